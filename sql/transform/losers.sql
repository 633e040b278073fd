-- Reads ids (every task id of a fetch in parts) and produces the table losers: the rows that lose to another
-- row of the same id across the whole fetch (the highest StatusRevision wins, then the later pass, page and
-- position). Kept for the fetch's later parts, which follow in the same lane.
CREATE OR REPLACE TEMP TABLE losers AS
SELECT page_offset, pass_no, pos FROM ids
QUALIFY row_number() OVER (
    PARTITION BY task_id ORDER BY status_revision DESC NULLS LAST, pass_no DESC, page_offset DESC, pos DESC
) > 1
