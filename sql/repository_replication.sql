-- Where does each source repository stand now? Grain: one row per instance and source repository (tasks
-- whose source resource was rejected have none and are left out). Columns: instance_id, src_repository,
-- last_success (latest end_time of a Succeed task), last_failure (latest end_time, or start_time when it
-- has none, of a Failed or Stopped task), failures_in_a_row (Failed or Stopped tasks in a row counted back
-- from the newest finished task, ordered by start_time, unknown first, then task_id and execution_id; 0
-- when the newest finished task succeeded; running tasks are skipped), tags_replicated (source-side tag
-- rows of Succeed copy tasks), destinations (sorted distinct destination repositories, a list), tasks.
WITH src_tags AS (
    SELECT instance_id, execution_id, task_id, count(*) AS n
    FROM tags
    WHERE side = 'src'
    GROUP BY instance_id, execution_id, task_id
),
ranked AS (
    SELECT
        t.instance_id,
        t.src_repository,
        t.dst_repository,
        t.status,
        t.start_time,
        t.end_time,
        CASE WHEN t.status = 'Succeed' AND t.operation = 'copy' THEN coalesce(g.n, 0) ELSE 0 END AS tags,
        CASE
            WHEN t.status IN ('Succeed', 'Failed', 'Stopped') THEN row_number() OVER (
                PARTITION BY t.instance_id, t.src_repository, t.status IN ('Succeed', 'Failed', 'Stopped')
                ORDER BY t.start_time DESC NULLS LAST, t.task_id DESC, t.execution_id DESC
            )
        END AS finished_rank
    FROM tasks AS t
    LEFT JOIN src_tags AS g
        ON g.instance_id = t.instance_id AND g.execution_id = t.execution_id AND g.task_id = t.task_id
    WHERE t.src_repository IS NOT NULL
)
SELECT
    instance_id,
    src_repository,
    max(end_time) FILTER (WHERE status = 'Succeed') AS last_success,
    max(coalesce(end_time, start_time)) FILTER (WHERE status IN ('Failed', 'Stopped')) AS last_failure,
    coalesce(
        min(finished_rank) FILTER (WHERE status = 'Succeed') - 1,
        count(*) FILTER (WHERE status IN ('Failed', 'Stopped'))
    ) AS failures_in_a_row,
    CAST(sum(tags) AS BIGINT) AS tags_replicated,
    coalesce(
        list(DISTINCT dst_repository ORDER BY dst_repository) FILTER (WHERE dst_repository IS NOT NULL),
        CAST([] AS VARCHAR[])
    ) AS destinations,
    count(*) AS tasks
FROM ranked
GROUP BY instance_id, src_repository
