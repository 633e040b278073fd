-- Reads the text $text and produces nothing: it raises DuckDB's own reason when the text is not JSON.
SELECT json($text)
