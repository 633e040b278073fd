-- Reads resource_errors and produces each rejected resource's row number and side: the explode leaves it out.
SELECT rn, side FROM resource_errors
