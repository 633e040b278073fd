-- Which tasks have been running (InProgress, Pending or Initialized) for longer than a threshold? A table
-- macro: SELECT ... FROM stuck_tasks() uses the default threshold of 6 hours, stuck_tasks(threshold :=
-- INTERVAL 1 HOUR) another one. Grain: one row per such task whose start_time is older than now() minus
-- the threshold (a task with no start time is left out), longest running first. Columns: instance_id,
-- execution_id, task_id, status, src_repository, start_time, running_for (now() - start_time, an interval),
-- running_hours (the same in hours, a double).
CREATE MACRO stuck_tasks(threshold := INTERVAL 6 HOUR) AS TABLE
SELECT
    instance_id,
    execution_id,
    task_id,
    status,
    src_repository,
    start_time,
    now() - start_time AS running_for,
    epoch(now() - start_time) / 3600 AS running_hours
FROM tasks
WHERE status IN ('InProgress', 'Pending', 'Initialized')
    AND start_time < now() - threshold
ORDER BY start_time, instance_id, execution_id, task_id
