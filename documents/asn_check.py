"""The ASN readiness check: what must hold before an 856 may go.

Retailers fine ship notices that do not match the freight (Target: $0.75 a
carton for ASN errors), so an 856 that would be wrong is not sent; the
reasons are kept on the document for staff:
- every carton has an SSCC (and every pallet a carton names);
- the cartons hold exactly what the shipment ships, SKU by SKU;
- a SKU with a case pack is packed in whole cases;
- a freight shipment has a bill of lading.
"""

from __future__ import annotations


def problems(shipment: dict, case_packs: dict[str, int | None]) -> list[str]:
    """Every reason the shipment's 856 cannot go ([] when it can)."""
    out: list[str] = []
    cartons = shipment.get("cartons") or []
    if not cartons:
        out.append("the shipment has no cartons (give them with the shipment: cartons)")
    shipped: dict[str, int] = {}
    for line in shipment.get("lines") or []:
        shipped[line["sku"]] = shipped.get(line["sku"], 0) + int(line["quantity"])
    packed: dict[str, int] = {}
    for i, carton in enumerate(cartons, 1):
        n = carton.get("number") or i
        if not carton.get("sscc"):
            out.append(f"carton {n} has no SSCC (ONHAND_GS1_COMPANY_PREFIX was not set when it shipped)")
        for line in carton.get("lines") or []:
            sku, qty = line["sku"], int(line["quantity"])
            packed[sku] = packed.get(sku, 0) + qty
            pack = case_packs.get(sku)
            if pack and pack > 1 and qty % pack:
                out.append(f"carton {n}: {qty} of {sku} is not a multiple of its case pack of {pack}")
    if cartons:
        for sku in sorted(set(shipped) | set(packed)):
            if shipped.get(sku, 0) != packed.get(sku, 0):
                out.append(f"{sku}: {shipped.get(sku, 0)} units shipped, {packed.get(sku, 0)} in cartons")
    pallet_codes = shipment.get("pallet_ssccs") or []
    for n in sorted({int(c["pallet"]) for c in cartons if c.get("pallet")}):
        if n > len(pallet_codes) or not pallet_codes[n - 1]:
            out.append(f"pallet {n} has no SSCC")
    if shipment.get("method") == "freight" and not shipment.get("bill_of_lading"):
        out.append("a freight shipment needs a bill of lading (bill_of_lading)")
    return out
