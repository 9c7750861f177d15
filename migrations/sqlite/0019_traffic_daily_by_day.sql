-- The fleet's daily chart reads every client's days from a date on.
CREATE INDEX traffic_daily_by_day ON traffic_daily (day);
