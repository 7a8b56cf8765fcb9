"""Action and callback ids: the contract between rendered blocks and the handlers that receive them."""

ACKNOWLEDGE = "incident_acknowledge"
UPDATE = "incident_update"
ESCALATE = "incident_escalate"
RESOLVE = "incident_resolve"
CARD_ACTIONS = (ACKNOWLEDGE, UPDATE, ESCALATE, RESOLVE)
CONFIRM_RESTORED = "closure_confirm_restored"
STILL_BROKEN = "closure_still_broken"

DECLARE_VIEW = "incident_declare"
RESOLVE_VIEW = "incident_resolve"
UPDATE_VIEW = "incident_update"

# block_id / action_id pairs of modal inputs
TITLE = "title"
DESCRIPTION = "description"
IMPACT = "impact"
URGENCY = "urgency"
CATEGORY = "category"
PRIORITY = "priority"
DETECTED = "detected"
SUMMARY = "summary"
CAUSE = "cause"
RESOLUTION = "resolution"
UPDATE_TEXT = "update_text"
TAKE_COVER = "oncall_take_cover"  # I'll cover, on a cover request; its value is the request's number
