DROP TABLE notebook_messages;
DROP TABLE notebook_chats;
DROP TABLE notebook_cards;
DROP TABLE notebook_sources;
DROP TABLE notebook_shares;
DROP TABLE notebooks;
