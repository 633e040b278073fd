-- Which tags and digests did not reach the destination, and which tags moved to another digest? Two kinds
-- of rows. 'missing': within one copy task (all statuses; tasks whose destination resource was rejected
-- are left out), a source-side tag whose (digest, tag) the destination side does not list, or an untagged
-- source-side artifact whose digest the destination side does not list (tag NULL); group by
-- (src_repository, dst_repository) for the pairs. 'moved': a source repository's tag that an execution
-- lists at a digest other than the one the previous execution listing that tag left it at (source side of
-- tasks of any operation; executions in execution_id order; within an execution, the digest of its last
-- sighting by start_time, task_id); one row per new digest, at the first task of the execution showing
-- it. Grain: one row per task and missing tag or digest, or per move. Columns: kind, instance_id,
-- src_repository, dst_repository (NULL for moved), tag, digest (for moved: the new one), previous_digest
-- (NULL for missing), execution_id, task_id, seen_at (the task's start_time).
WITH copies AS (
    SELECT instance_id, execution_id, task_id, src_repository, dst_repository, start_time
    FROM tasks
    WHERE operation = 'copy' AND NOT coalesce(dst_rejected, false)
),
missing_tags AS (
    SELECT
        t.instance_id,
        t.src_repository,
        t.dst_repository,
        s.tag,
        s.digest,
        t.execution_id,
        t.task_id,
        t.start_time
    FROM tags AS s
    JOIN copies AS t
        ON t.instance_id = s.instance_id AND t.execution_id = s.execution_id AND t.task_id = s.task_id
    WHERE s.side = 'src'
        AND NOT EXISTS (
            SELECT 1
            FROM tags AS d
            WHERE d.side = 'dst'
                AND d.instance_id = s.instance_id
                AND d.execution_id = s.execution_id
                AND d.task_id = s.task_id
                AND d.digest IS NOT DISTINCT FROM s.digest
                AND d.tag = s.tag
        )
),
missing_digests AS (
    SELECT
        t.instance_id,
        t.src_repository,
        t.dst_repository,
        CAST(NULL AS VARCHAR) AS tag,
        a.digest,
        t.execution_id,
        t.task_id,
        t.start_time
    FROM artifacts AS a
    JOIN copies AS t
        ON t.instance_id = a.instance_id AND t.execution_id = a.execution_id AND t.task_id = a.task_id
    WHERE a.side = 'src'
        AND NOT EXISTS (
            SELECT 1
            FROM tags AS g
            WHERE g.side = 'src'
                AND g.instance_id = a.instance_id
                AND g.execution_id = a.execution_id
                AND g.task_id = a.task_id
                AND g.artifact_idx = a.artifact_idx
        )
        AND NOT EXISTS (
            SELECT 1
            FROM artifacts AS d
            WHERE d.side = 'dst'
                AND d.instance_id = a.instance_id
                AND d.execution_id = a.execution_id
                AND d.task_id = a.task_id
                AND d.digest IS NOT DISTINCT FROM a.digest
        )
),
observed AS (
    SELECT
        t.instance_id,
        t.src_repository,
        s.tag,
        s.digest,
        t.execution_id,
        t.task_id,
        t.start_time,
        row_number() OVER (
            PARTITION BY t.instance_id, t.src_repository, s.tag, t.execution_id, s.digest
            ORDER BY t.start_time NULLS FIRST, t.task_id, s.artifact_idx
        ) AS nth_sighting,
        last_value(s.digest) OVER (
            PARTITION BY t.instance_id, t.src_repository, s.tag, t.execution_id
            ORDER BY t.start_time NULLS FIRST, t.task_id, s.artifact_idx
            ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING
        ) AS execution_digest
    FROM tags AS s
    JOIN tasks AS t
        ON t.instance_id = s.instance_id AND t.execution_id = s.execution_id AND t.task_id = s.task_id
    WHERE s.side = 'src' AND t.src_repository IS NOT NULL AND s.digest IS NOT NULL
),
per_execution AS (
    SELECT
        instance_id,
        src_repository,
        tag,
        execution_id,
        lag(execution_digest) OVER (
            PARTITION BY instance_id, src_repository, tag
            ORDER BY execution_id
        ) AS previous_digest
    FROM (SELECT DISTINCT instance_id, src_repository, tag, execution_id, execution_digest FROM observed)
),
moved AS (
    SELECT
        o.instance_id,
        o.src_repository,
        o.tag,
        o.digest,
        p.previous_digest,
        o.execution_id,
        o.task_id,
        o.start_time
    FROM observed AS o
    JOIN per_execution AS p
        ON p.instance_id = o.instance_id
        AND p.src_repository = o.src_repository
        AND p.tag = o.tag
        AND p.execution_id = o.execution_id
    WHERE o.nth_sighting = 1 AND o.digest <> p.previous_digest
)
SELECT
    'missing' AS kind,
    instance_id,
    src_repository,
    dst_repository,
    tag,
    digest,
    CAST(NULL AS VARCHAR) AS previous_digest,
    execution_id,
    task_id,
    start_time AS seen_at
FROM missing_tags
UNION ALL
SELECT
    'missing' AS kind,
    instance_id,
    src_repository,
    dst_repository,
    tag,
    digest,
    CAST(NULL AS VARCHAR) AS previous_digest,
    execution_id,
    task_id,
    start_time AS seen_at
FROM missing_digests
UNION ALL
SELECT
    'moved' AS kind,
    instance_id,
    src_repository,
    CAST(NULL AS VARCHAR) AS dst_repository,
    tag,
    digest,
    previous_digest,
    execution_id,
    task_id,
    start_time AS seen_at
FROM moved
