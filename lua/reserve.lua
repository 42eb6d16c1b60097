-- reserve.lua: accept a new order and reserve all its lines in one step.
--
-- Every line is reserved in the same atomic call from the one pool both
-- channels share. What stock cannot cover is handled by the order's backorder
-- policy: backorder / ship_complete (backordered), cancel_remainder
-- (cancelled), accept (exception units, DTC only), all_or_nothing (refuse the
-- whole order, nothing written). Wholesale lines take at most
-- available_to_wholesale (available - dtc_reserve); DTC lines may use all of
-- available. Lines naming the same SKU draw on it one after the other.
-- The work is lib.lua's place_order(), which the Shopify intake shares.
--
-- KEYS[1]  merchant prefix (see lib.lua for the derived key patterns)
-- KEYS[2]  the merchant's guard (never touched; see lib.lua)
-- ARGV     common ARGV[1..7] (lib.lua); ARGV[6] command:
--   order_id     string, 1-64 of [A-Za-z0-9_-]; must not exist yet
--   channel      "dtc" | "wholesale"
--   policy       "backorder" | "ship_complete" | "cancel_remainder" |
--                "all_or_nothing" | "accept" (accept: DTC only)
--   doc          string, the order's header as JSON (opaque here), <= 2 MiB
--   lines        array of 1-500 {sku, qty}; qty integer 1..10^9
--   unknown_sku  "refuse" (default: a line naming a missing SKU refuses the
--                order) | "exception" (Shopify intake: the line keeps its SKU
--                or "" and becomes exception units that never touch a counter)
--   test         boolean: record the order, reserve nothing (units cancelled)
--
-- Returns (JSON, replayed flag):
--   ok                    {order_id, order = snapshot, fills = [], more = []}
--   insufficient_stock    {lines = [{sku, requested, available}]}  (stored)
--   not_found             {kind = "sku", skus = [...]}
--   conflict              {reason = "order_exists"}
--   invalid               {field, detail}
--   not_ready, idempotency_key_reused
--
-- Writes: P:seq, P:o:<order>, P:s:<sku>, P:r:<sku>, P:wd:<sku>, P:ww:<sku>,
--   P:outbox, P:dirty, P:dirtyat, P:unsynced, P:i:<op>, P:if:<op>
--
-- Invariant kept: for every SKU, available = on_hand - reserved >= 0, and a
-- wholesale reservation never takes available below dtc_reserve.

local cmd, early = begin()
if early then return early end

local o, refused = place_order(cmd)
if refused then return refused end

return commit('order.accepted', {order_id = o.id}, {})
