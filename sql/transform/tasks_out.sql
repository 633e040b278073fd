-- Reads kept_tasks and resource_errors and produces the rows of the tasks table: of a side that was
-- rejected it keeps nothing but the flag *_rejected (the other columns of a side were read with the batch,
-- see read.sql).
SELECT
    t.instance_id, t.execution_id, t.task_id, t.policy_id, t.resource_type, t.operation, t.job_id, t.status,
    t.status_revision, t.start_time, t.end_time,
    CASE WHEN t.end_time >= t.start_time THEN epoch(t.end_time) - epoch(t.start_time) END AS duration_s,
    CASE WHEN s.error IS NULL THEN t.src_repository END AS src_repository,
    CASE WHEN s.error IS NULL THEN t.src_artifacts END AS src_artifacts,
    CASE WHEN s.error IS NULL THEN t.src_tags END AS src_tags,
    CASE WHEN s.error IS NULL THEN t.src_public END AS src_public,
    CASE WHEN s.error IS NULL THEN t.src_deleted END AS src_deleted,
    s.error IS NOT NULL AS src_rejected,
    CASE WHEN d.error IS NULL THEN t.dst_repository END AS dst_repository,
    CASE WHEN d.error IS NULL THEN t.dst_artifacts END AS dst_artifacts,
    CASE WHEN d.error IS NULL THEN t.dst_tags END AS dst_tags,
    CASE WHEN d.error IS NULL THEN t.dst_public END AS dst_public,
    CASE WHEN d.error IS NULL THEN t.dst_deleted END AS dst_deleted,
    d.error IS NOT NULL AS dst_rejected,
    CASE WHEN d.error IS NULL THEN t.dst_override END AS dst_override,
    t.run_id, t.execution_month
FROM kept_tasks t
LEFT JOIN (SELECT rn, error FROM resource_errors WHERE side = 'src') s USING (rn)
LEFT JOIN (SELECT rn, error FROM resource_errors WHERE side = 'dst') d USING (rn)
