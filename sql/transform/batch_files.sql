-- Reads batch_pages (the batch's pages, a row each, registered from Arrow) and produces the table
-- batch_files: a table of its own, since a page that cannot be read is deleted from it (unread_page.sql).
CREATE OR REPLACE TEMP TABLE batch_files AS SELECT * FROM batch_pages
