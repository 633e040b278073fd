-- How much work is done each day? Grain: one row per day (the UTC date of the task's start_time; NULL when
-- it is unknown), operation and status. Columns: day, operation, status, tasks, artifacts (source-side
-- artifact rows of those tasks), tags (source-side tag rows of those tasks).
WITH src_artifacts AS (
    SELECT instance_id, execution_id, task_id, count(*) AS n
    FROM artifacts
    WHERE side = 'src'
    GROUP BY instance_id, execution_id, task_id
),
src_tags AS (
    SELECT instance_id, execution_id, task_id, count(*) AS n
    FROM tags
    WHERE side = 'src'
    GROUP BY instance_id, execution_id, task_id
)
SELECT
    CAST(timezone('UTC', t.start_time) AS DATE) AS day,
    t.operation,
    t.status,
    count(*) AS tasks,
    CAST(coalesce(sum(a.n), 0) AS BIGINT) AS artifacts,
    CAST(coalesce(sum(g.n), 0) AS BIGINT) AS tags
FROM tasks AS t
LEFT JOIN src_artifacts AS a
    ON a.instance_id = t.instance_id AND a.execution_id = t.execution_id AND a.task_id = t.task_id
LEFT JOIN src_tags AS g
    ON g.instance_id = t.instance_id AND g.execution_id = t.execution_id AND g.task_id = t.task_id
GROUP BY CAST(timezone('UTC', t.start_time) AS DATE), t.operation, t.status
