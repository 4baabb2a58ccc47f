DROP TABLE secret_handles;
