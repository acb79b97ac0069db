-- A mediator's staff account names its mediator record, for the
-- instant-mediation queue's "me".

ALTER TABLE staff_accounts ADD COLUMN mediator_id text NOT NULL DEFAULT '';
