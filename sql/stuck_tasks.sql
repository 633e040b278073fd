-- Which tasks have been running (InProgress, Pending or Initialized) for more than 6 hours? A view, so that
-- BI tools list it; the macro stuck_tasks_over(threshold := INTERVAL 2 HOUR) takes another threshold. Grain:
-- one row per such task whose start_time is older than now() minus 6 hours (a task with no start time is left
-- out), longest running first, then instance_id, execution_id and task_id. Columns: instance_id, execution_id,
-- task_id, status, src_repository, start_time, running_for (now() - start_time, an interval), running_hours
-- (the same in hours, a double).
SELECT
    instance_id,
    execution_id,
    task_id,
    status,
    src_repository,
    start_time,
    running_for,
    running_hours
FROM stuck_tasks_over()
ORDER BY start_time, instance_id, execution_id, task_id
