DROP TABLE messages;
DROP TABLE conversations;
DROP TABLE chatbot_knowledge_bases;
DROP TABLE chatbots;
