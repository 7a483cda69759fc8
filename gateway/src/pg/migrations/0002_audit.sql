-- Version 2: the audit log (one hash chain per replica, checkpoints per chain, county
-- checkpoints over every chain's head).
SELECT 1;
