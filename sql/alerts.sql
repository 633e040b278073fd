-- What needs someone's attention now? The alerts of alerts_over() with its default thresholds (a view, so
-- that BI tools list it): failing policies (newest finished execution over 10% failed tasks), stale
-- scheduled policies (no success for 26 hours), stuck tasks (running for over 6 hours), missing tags (any
-- source tag whose newest finished attempt failed or did not reach the destination), silent schedules (a
-- cron that called for two or more executions that never came). Disabled policies and manual runs never
-- alert. Grain: one row per policy and kind. Columns: instance_id, policy_id, policy_name, kind, since,
-- value, detail (see alerts_over).
SELECT
    instance_id,
    policy_id,
    policy_name,
    kind,
    since,
    value,
    detail
FROM alerts_over()
