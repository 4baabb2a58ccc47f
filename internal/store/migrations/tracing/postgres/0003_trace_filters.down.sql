DROP INDEX traces_session;
DROP INDEX traces_user;
