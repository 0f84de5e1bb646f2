DROP TABLE notify_progress;
DROP TABLE notification_attempts;
DROP TABLE notifications;
