DROP INDEX documents_processed;
DROP INDEX conversations_created;
DROP INDEX messages_created;
DROP TABLE usage_daily;
