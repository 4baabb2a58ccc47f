DROP INDEX documents_unfinished;
