-- How healthy is each replication policy, day by day? Grain: one row per instance, policy and day (the UTC
-- date of the execution's created_at; every execution of the policy that day, tasks or not). Columns:
-- instance_id, policy_id, policy_name, day, executions, tasks, finished_tasks (Succeed, Failed or Stopped),
-- task_success_rate (Succeed / finished tasks; NULL when none finished), p50_duration_s and p95_duration_s
-- (quantile_cont of duration_s over every task that has one, whatever its status), artifacts_replicated
-- and tags_replicated (destination-side artifact and tag rows of Succeed copy tasks).
WITH dst_artifacts AS (
    SELECT instance_id, execution_id, task_id, count(*) AS n
    FROM artifacts
    WHERE side = 'dst'
    GROUP BY instance_id, execution_id, task_id
),
dst_tags AS (
    SELECT instance_id, execution_id, task_id, count(*) AS n
    FROM tags
    WHERE side = 'dst'
    GROUP BY instance_id, execution_id, task_id
),
task_rows AS (
    SELECT
        t.instance_id,
        t.execution_id,
        t.status,
        t.duration_s,
        CASE WHEN t.status = 'Succeed' AND t.operation = 'copy' THEN coalesce(a.n, 0) ELSE 0 END AS artifacts,
        CASE WHEN t.status = 'Succeed' AND t.operation = 'copy' THEN coalesce(g.n, 0) ELSE 0 END AS tags
    FROM tasks AS t
    LEFT JOIN dst_artifacts AS a
        ON a.instance_id = t.instance_id AND a.execution_id = t.execution_id AND a.task_id = t.task_id
    LEFT JOIN dst_tags AS g
        ON g.instance_id = t.instance_id AND g.execution_id = t.execution_id AND g.task_id = t.task_id
)
SELECT
    e.instance_id,
    e.policy_id,
    p.name AS policy_name,
    CAST(timezone('UTC', e.created_at) AS DATE) AS day,
    count(DISTINCT e.execution_id) AS executions,
    count(r.execution_id) AS tasks,
    count(*) FILTER (WHERE r.status IN ('Succeed', 'Failed', 'Stopped')) AS finished_tasks,
    count(*) FILTER (WHERE r.status = 'Succeed')
    / nullif(count(*) FILTER (WHERE r.status IN ('Succeed', 'Failed', 'Stopped')), 0) AS task_success_rate,
    quantile_cont(r.duration_s, 0.5) AS p50_duration_s,
    quantile_cont(r.duration_s, 0.95) AS p95_duration_s,
    CAST(coalesce(sum(r.artifacts), 0) AS BIGINT) AS artifacts_replicated,
    CAST(coalesce(sum(r.tags), 0) AS BIGINT) AS tags_replicated
FROM executions AS e
LEFT JOIN task_rows AS r ON r.instance_id = e.instance_id AND r.execution_id = e.execution_id
LEFT JOIN policies AS p ON p.instance_id = e.instance_id AND p.policy_id = e.policy_id
GROUP BY e.instance_id, e.policy_id, p.name, CAST(timezone('UTC', e.created_at) AS DATE)
