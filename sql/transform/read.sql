-- Reads page_texts (a batch's pages, each with its keys and its text: pipeline.transform.pages) and
-- produces the batch's tasks, a row each: its fields typed, what the tasks table keeps of both resources,
-- their artifact lists (*_list), and their text only where it must be judged again (*_look, *_txt).
-- Constants: page_structure (every task field, read as text) and unparsed (the position of the one row a
-- page that does not parse gives). Both resources are parsed in the same pass as the page (decision 0011).
SELECT * EXCLUDE (src_resource, dst_resource, src_look, dst_look, src_p, dst_p),
    src_look, CASE WHEN src_look THEN src_resource END AS src_txt,
    dst_look, CASE WHEN dst_look THEN dst_resource END AS dst_txt,
    src_p IS NULL AS src_unparsed,
    src_p.metadata.artifacts AS src_list,
    src_p.metadata.repository.name AS src_repository,
    coalesce(len(src_p.metadata.artifacts), 0)::INTEGER AS src_artifacts,
    TRY_CAST(src_p.metadata.repository.metadata.public AS BOOLEAN) AS src_public,
    src_p.deleted AS src_deleted,
    dst_p IS NULL AS dst_unparsed,
    dst_p.metadata.artifacts AS dst_list,
    dst_p.metadata.repository.name AS dst_repository,
    coalesce(len(dst_p.metadata.artifacts), 0)::INTEGER AS dst_artifacts,
    TRY_CAST(dst_p.metadata.repository.metadata.public AS BOOLEAN) AS dst_public,
    dst_p.deleted AS dst_deleted,
    dst_p.override AS dst_override
FROM (
    SELECT *,
        src_p IS NULL OR suspicious_resource(src_p) AS src_look,
        dst_p IS NULL OR suspicious_resource(dst_p) AS dst_look
    FROM (
        SELECT *, parsed_resource(src_resource) AS src_p, parsed_resource(dst_resource) AS dst_p
        FROM (
            SELECT
                u.instance_id, u.execution_id, u.run_id, u.page_offset, u.pass_no, u.execution_month, u.policy_id,
                u.pos,
                u.t.id AS id_raw,
                api_integer(u.t.id) AS task_id,
                u.t.resource_type, u.t.operation, u.t.job_id, u.t.status,
                coalesce(u.t."StatusRevision", u.t.status_revision) AS revision_raw,
                api_integer(coalesce(u.t."StatusRevision", u.t.status_revision)) AS status_revision,
                u.t.start_time AS start_raw, api_time(u.t.start_time) AS start_time,
                u.t.end_time AS end_raw, api_time(u.t.end_time) AS end_time,
                u.t.src_resource, u.t.dst_resource
            FROM (
                -- each task with its page's keys and its position. The keys come with each page's text, not
                -- from a join: DuckDB cannot know how many rows a stream holds, and would build the join's
                -- hash table from the tasks. A page that does not parse gives one row, with no task.
                SELECT * EXCLUDE (json, page),
                    unnest(CASE WHEN page IS NULL THEN [NULL] ELSE page.tasks END) AS t,
                    unnest(CASE WHEN page IS NULL THEN [${unparsed}] ELSE range(len(page.tasks)) END)::INTEGER AS pos
                FROM (SELECT *, TRY(json_transform(json, '${page_structure}')) AS page FROM page_texts)
            ) u
        )
    )
)
