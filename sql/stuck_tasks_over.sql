-- Which tasks have been running (InProgress, Pending or Initialized) for longer than a threshold of your
-- choosing? A table macro, for thresholds other than the 6 hours of the view stuck_tasks: SELECT ... FROM
-- stuck_tasks_over(threshold := INTERVAL 2 HOUR); stuck_tasks_over() uses 6 hours too. Grain: one row per
-- such task whose start_time is older than now() minus the threshold (a task with no start time is left out),
-- longest running first, then instance_id, execution_id and task_id. Columns: instance_id, execution_id,
-- task_id, status, src_repository, start_time, running_for (now() - start_time, an interval), running_hours
-- (the same in hours, a double).
CREATE MACRO stuck_tasks_over(threshold := INTERVAL 6 HOUR) AS TABLE
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
