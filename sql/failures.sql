-- Which tasks failed or were stopped, and what did they carry? Grain: one row per Failed or Stopped task,
-- newest first (start_time descending, unknown last, then execution_id and task_id descending). Columns:
-- instance_id, execution_id, task_id, policy_id, status, operation, src_repository, dst_repository, digests
-- (sorted distinct source-side digests, a list; empty when the source resource listed none or was
-- rejected), tags (sorted distinct source-side tags, a list), start_time, end_time.
WITH src_digests AS (
    SELECT instance_id, execution_id, task_id, list(DISTINCT digest ORDER BY digest) AS digests
    FROM artifacts
    WHERE side = 'src' AND digest IS NOT NULL
    GROUP BY instance_id, execution_id, task_id
),
src_tags AS (
    SELECT instance_id, execution_id, task_id, list(DISTINCT tag ORDER BY tag) AS tags
    FROM tags
    WHERE side = 'src' AND tag IS NOT NULL
    GROUP BY instance_id, execution_id, task_id
)
SELECT
    t.instance_id,
    t.execution_id,
    t.task_id,
    t.policy_id,
    t.status,
    t.operation,
    t.src_repository,
    t.dst_repository,
    coalesce(d.digests, CAST([] AS VARCHAR[])) AS digests,
    coalesce(g.tags, CAST([] AS VARCHAR[])) AS tags,
    t.start_time,
    t.end_time
FROM tasks AS t
LEFT JOIN src_digests AS d
    ON d.instance_id = t.instance_id AND d.execution_id = t.execution_id AND d.task_id = t.task_id
LEFT JOIN src_tags AS g
    ON g.instance_id = t.instance_id AND g.execution_id = t.execution_id AND g.task_id = t.task_id
WHERE t.status IN ('Failed', 'Stopped')
ORDER BY t.start_time DESC NULLS LAST, t.execution_id DESC, t.task_id DESC, t.instance_id
