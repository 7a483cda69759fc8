-- Version 1: the registry (connectors and their versions, applied policy and purpose
-- files, grants, access requests, and the revision every commit advances).
SELECT 1;
