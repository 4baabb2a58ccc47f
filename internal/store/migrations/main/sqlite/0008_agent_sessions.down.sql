DROP TABLE agent_user_states;
DROP TABLE agent_app_states;
DROP TABLE agent_events;
DROP TABLE agent_sessions;
