-- Reads nothing; defines the rules several statements of the transform share, as macros of the
-- connection (run once per connection by pipeline.transform.sql.define_macros). DuckDB writes a macro's
-- body in where it is called before it plans the statement, so a macro costs nothing at run time.
-- Constant: resource_structure, what the transform reads from a resource (pipeline.transform.sql).

-- An integer sent as a number or as its digits, white space around it allowed: trim takes off Unicode
-- spaces, the cast ASCII white space such as tabs and newlines. Only the rare text that needs it pays
-- for the trim (decision 0004). TRY_CAST although the pattern admits only digits: DuckDB may evaluate a
-- THEN branch on rows its WHEN rules out (1.5 does in read.sql), and a CAST there would fail the statement.
CREATE OR REPLACE TEMP MACRO api_integer(v) AS
    CASE WHEN regexp_full_match(v, '-?[0-9]{1,18}') THEN TRY_CAST(v AS BIGINT)
         WHEN regexp_full_match(trim(v), '\s*-?[0-9]{1,18}\s*') THEN TRY_CAST(trim(v) AS BIGINT) END;

-- A time (an empty one is NULL). The cast reads spaces around it itself; only a text it refuses is
-- trimmed and cast again, for Unicode spaces, which only trim takes off (decision 0004).
CREATE OR REPLACE TEMP MACRO api_time(v) AS
    coalesce(TRY_CAST(v AS TIMESTAMPTZ), TRY_CAST(trim(v) AS TIMESTAMPTZ));

-- The parse of a resource's text, NULL when it is not JSON. A text in braces is parsed under TRY, once;
-- any other (an empty string, cut short, trailing text, not an object) goes through json_valid first,
-- since TRY redoes a whole vector row by row when one row fails (decision 0004).
CREATE OR REPLACE TEMP MACRO parsed_resource(resource) AS
    CASE
        WHEN starts_with(resource, '{') AND ends_with(resource, '}')
            THEN TRY(json_transform(resource, '${resource_structure}'))
        WHEN json_valid(resource) THEN json_transform(resource, '${resource_structure}')
    END;

-- Whether a parsed resource needs a closer look (resource_errors.sql): the parse gives NULL for a missing
-- key and for a value of the wrong type, so a NULL wherever the transform needs a value is suspicious.
-- Keep in step with pipeline.transform.explode.resource_facts, which tells what such a resource lacks.
CREATE OR REPLACE TEMP MACRO suspicious_resource(p) AS (
    p.metadata IS NULL OR p.metadata.repository IS NULL OR p.metadata.repository.name IS NULL
    OR p.metadata.artifacts IS NULL
    OR coalesce(list_bool_or(list_transform(
        p.metadata.artifacts,
        -- list_position finds a NULL too: whether a tag is NULL (cheaper than list_count against len)
        lambda a: a IS NULL OR a.digest IS NULL OR a.tags IS NULL OR list_position(a.tags, NULL) IS NOT NULL
    )), false)
);
