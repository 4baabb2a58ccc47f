DROP TABLE webhook_deliveries;
DROP TABLE webhooks;
DROP TABLE notification_prefs;
DROP TABLE notifications;
DROP TABLE notify_events;
