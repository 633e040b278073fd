-- Which repositories fail most? Per instance and source repository: tasks, failed and stopped tasks, the
-- failure rate (failed or stopped / finished), the last failure, and the finished tasks (Succeed, Failed or
-- Stopped) the rate is taken over. `swr-etl report` ranks by failure rate, those with fewer than 5 finished
-- tasks after the rest, ties to more failures. Grain: one row per instance and source repository. Columns:
-- instance_id, src_repository, tasks, failed, stopped, failure_rate, last_failure, finished.
SELECT
    instance_id,
    src_repository,
    count(*) AS tasks,
    count(*) FILTER (WHERE status = 'Failed') AS failed,
    count(*) FILTER (WHERE status = 'Stopped') AS stopped,
    count(*) FILTER (WHERE status IN ('Failed', 'Stopped'))
    / nullif(count(*) FILTER (WHERE status IN ('Succeed', 'Failed', 'Stopped')), 0) AS failure_rate,
    max(start_time) FILTER (WHERE status IN ('Failed', 'Stopped')) AS last_failure,
    count(*) FILTER (WHERE status IN ('Succeed', 'Failed', 'Stopped')) AS finished
FROM tasks
WHERE src_repository IS NOT NULL
GROUP BY instance_id, src_repository
