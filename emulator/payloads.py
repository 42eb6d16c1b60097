"""Webhook bodies: the REST resources Shopify posts, key for key and in the same order.

Shapes follow the real deliveries in tests/fixtures/shopify (orders/create and
orders/cancelled from a dev store on API 2024-10, refunds taken from the cancel,
app/uninstalled from the docs sample). Money fields are strings, every amount has
a `*_set` twin, and refund line `subtotal`/`total_tax` are JSON numbers.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import msgspec

from emulator.ids import gid
from emulator.model import Fulfillment, LineItem, Order, Refund, RefundLine

ZERO = Decimal("0.00")


# -- shared pieces -------------------------------------------------------------------


class Money(msgspec.Struct):
    amount: str
    currency_code: str


class MoneySet(msgspec.Struct):
    shop_money: Money
    presentment_money: Money


class Address(msgspec.Struct):
    first_name: str | None
    address1: str | None
    phone: str | None
    city: str | None
    zip: str | None
    province: str | None
    country: str | None
    last_name: str | None
    address2: str | None
    company: str | None
    latitude: float | None
    longitude: float | None
    name: str | None
    country_code: str | None
    province_code: str | None


class CustomerAddress(msgspec.Struct):
    id: int
    customer_id: int
    first_name: str
    last_name: str
    company: str
    address1: str
    address2: str
    city: str
    province: str
    country: str
    zip: str
    phone: str | None
    name: str
    province_code: str | None
    country_code: str
    country_name: str
    default: bool


class MarketingConsent(msgspec.Struct):
    state: str
    opt_in_level: str
    consent_updated_at: str | None


class SmsMarketingConsent(msgspec.Struct):
    state: str
    opt_in_level: str
    consent_updated_at: str | None
    consent_collected_from: str


class CustomerPayload(msgspec.Struct):
    id: int
    email: str
    created_at: str
    updated_at: str
    first_name: str
    last_name: str
    state: str
    note: str | None
    verified_email: bool
    multipass_identifier: str | None
    tax_exempt: bool
    phone: str | None
    email_marketing_consent: MarketingConsent
    sms_marketing_consent: SmsMarketingConsent | None
    tags: str
    currency: str
    tax_exemptions: list[str]
    admin_graphql_api_id: str
    default_address: CustomerAddress


class ClientDetails(msgspec.Struct):
    accept_language: str | None
    browser_height: int | None
    browser_ip: str | None
    browser_width: int | None
    session_hash: str | None
    user_agent: str | None


class LineItemPayload(msgspec.Struct):
    id: int
    admin_graphql_api_id: str
    attributed_staffs: list[Any]
    current_quantity: int
    fulfillable_quantity: int
    fulfillment_service: str
    fulfillment_status: str | None
    gift_card: bool
    grams: int
    name: str
    price: str
    price_set: MoneySet
    product_exists: bool
    product_id: int | None
    properties: list[Any]
    quantity: int
    requires_shipping: bool
    sku: str | None
    taxable: bool
    title: str
    total_discount: str
    total_discount_set: MoneySet
    variant_id: int | None
    variant_inventory_management: str | None
    variant_title: str | None
    vendor: str | None
    tax_lines: list[Any]
    duties: list[Any]
    discount_allocations: list[Any]


class TransactionPayload(msgspec.Struct):
    id: int
    admin_graphql_api_id: str
    amount: str
    authorization: str | None
    created_at: str
    currency: str
    device_id: int | None
    error_code: str | None
    gateway: str
    kind: str
    location_id: int | None
    message: str
    order_id: int
    parent_id: int | None
    payment_id: str
    processed_at: str
    receipt: dict[str, Any]
    source_name: str
    status: str
    test: bool
    user_id: int | None


class RefundLineItemPayload(msgspec.Struct):
    id: int
    line_item_id: int
    location_id: int | None
    quantity: int
    restock_type: str
    # JSON numbers here, unlike the order's money strings.
    subtotal: int | float
    subtotal_set: MoneySet
    total_tax: int | float
    total_tax_set: MoneySet
    line_item: LineItemPayload


class RefundPayload(msgspec.Struct):
    id: int
    admin_graphql_api_id: str
    created_at: str
    note: str | None
    order_id: int
    processed_at: str
    restock: bool
    total_duties_set: MoneySet
    user_id: int | None
    order_adjustments: list[Any]
    transactions: list[TransactionPayload]
    refund_line_items: list[RefundLineItemPayload]
    duties: list[Any]
    # Present in the 2026-07 docs sample, absent from the 2024-10 capture.
    refund_shipping_lines: list[Any]
    # Named `return` on the wire; a Python keyword, hence the rename.
    return_: Any = msgspec.field(default=None, name="return")


class FulfillmentPayload(msgspec.Struct):
    id: int
    admin_graphql_api_id: str
    created_at: str
    location_id: int
    name: str
    order_id: int
    origin_address: dict[str, Any]
    receipt: dict[str, Any]
    service: str
    shipment_status: str | None
    status: str
    tracking_company: str | None
    tracking_number: str | None
    tracking_numbers: list[str]
    tracking_url: str | None
    tracking_urls: list[str]
    updated_at: str
    line_items: list[LineItemPayload]


class OrderPayload(msgspec.Struct):
    id: int
    admin_graphql_api_id: str
    app_id: int | None
    browser_ip: str | None
    buyer_accepts_marketing: bool
    cancel_reason: str | None
    cancelled_at: str | None
    cart_token: str | None
    checkout_id: int | None
    checkout_token: str | None
    client_details: ClientDetails
    closed_at: str | None
    company: Any
    confirmation_number: str
    confirmed: bool
    contact_email: str | None
    created_at: str
    currency: str
    current_shipping_price_set: MoneySet
    current_subtotal_price: str
    current_subtotal_price_set: MoneySet
    current_total_additional_fees_set: MoneySet | None
    current_total_discounts: str
    current_total_discounts_set: MoneySet
    current_total_duties_set: MoneySet | None
    current_total_price: str
    current_total_price_set: MoneySet
    current_total_tax: str
    current_total_tax_set: MoneySet
    customer_locale: str
    device_id: int | None
    discount_codes: list[Any]
    duties_included: bool
    email: str
    estimated_taxes: bool
    financial_status: str
    fulfillment_status: str | None
    landing_site: str | None
    landing_site_ref: str | None
    location_id: int | None
    merchant_business_entity_id: str
    merchant_of_record_app_id: int | None
    name: str
    note: str | None
    note_attributes: list[Any]
    number: int
    order_number: int
    order_status_url: str
    original_total_additional_fees_set: MoneySet | None
    original_total_duties_set: MoneySet | None
    payment_gateway_names: list[str]
    phone: str | None
    po_number: str | None
    presentment_currency: str
    processed_at: str
    reference: str | None
    referring_site: str | None
    source_identifier: str | None
    source_name: str
    source_url: str | None
    subtotal_price: str
    subtotal_price_set: MoneySet
    tags: str
    tax_exempt: bool
    tax_lines: list[Any]
    taxes_included: bool
    test: bool
    token: str
    total_cash_rounding_payment_adjustment_set: MoneySet
    total_cash_rounding_refund_adjustment_set: MoneySet
    total_discounts: str
    total_discounts_set: MoneySet
    total_line_items_price: str
    total_line_items_price_set: MoneySet
    total_outstanding: str
    total_price: str
    total_price_set: MoneySet
    total_shipping_price_set: MoneySet
    total_tax: str
    total_tax_set: MoneySet
    total_tip_received: str
    total_weight: int
    updated_at: str
    user_id: int | None
    billing_address: Address
    customer: CustomerPayload
    discount_applications: list[Any]
    fulfillments: list[FulfillmentPayload]
    line_items: list[LineItemPayload]
    payment_terms: Any
    refunds: list[RefundPayload]
    shipping_address: Address
    shipping_lines: list[Any]
    returns: list[Any]


class ShopPayload(msgspec.Struct):
    """app/uninstalled carries the Shop resource."""

    id: int
    name: str
    email: str
    domain: str | None
    province: str
    country: str
    address1: str
    zip: str
    city: str
    source: str | None
    phone: str
    latitude: float | None
    longitude: float | None
    primary_locale: str
    address2: str | None
    created_at: str | None
    updated_at: str | None
    country_code: str
    country_name: str
    currency: str
    customer_email: str
    timezone: str
    iana_timezone: str | None
    shop_owner: str
    money_format: str
    money_with_currency_format: str
    weight_unit: str
    province_code: str
    taxes_included: bool | None
    auto_configure_tax_inclusivity: bool | None
    tax_shipping: bool | None
    county_taxes: bool | None
    plan_display_name: str
    plan_name: str
    has_discounts: bool
    has_gift_cards: bool
    myshopify_domain: str | None
    google_apps_domain: str | None
    google_apps_login_enabled: bool | None
    money_in_emails_format: str
    money_with_currency_in_emails_format: str
    eligible_for_payments: bool
    requires_extra_payments_agreement: bool
    password_enabled: bool | None
    has_storefront: bool
    finances: bool
    primary_location_id: int
    checkout_api_supported: bool
    multi_location_enabled: bool
    setup_required: bool
    pre_launch_enabled: bool
    enabled_presentment_currencies: list[str]
    marketing_sms_consent_enabled_at_checkout: bool
    transactional_sms_disabled: bool


# -- builders ------------------------------------------------------------------------


class PayloadContext(msgspec.Struct, kw_only=True):
    """Shop facts the builders need, so they stay free of server state."""

    shop_domain: str
    shop_name: str
    shop_id: int
    currency: str
    tz: Any  # a tzinfo: timestamps are rendered in the shop's zone, as Shopify does
    primary_location_id: int
    locations_count: int


def rfc3339(moment: datetime | None, tz: Any) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(tz).isoformat(timespec="seconds")


def money(amount: Decimal) -> str:
    return str(amount.quantize(Decimal("0.01")))


def money_set(amount: Decimal, currency: str) -> MoneySet:
    m = Money(amount=money(amount), currency_code=currency)
    return MoneySet(shop_money=m, presentment_money=Money(m.amount, currency))


def json_number(amount: Decimal) -> int | float:
    # Shopify renders 99.00 as 99 and 89.99 as 89.99.
    return int(amount) if amount == amount.to_integral_value() else float(amount)


def line_item_payload(li: LineItem, ctx: PayloadContext) -> LineItemPayload:
    return LineItemPayload(
        id=li.id,
        admin_graphql_api_id=li.gid,
        attributed_staffs=[],
        current_quantity=li.current_quantity,
        fulfillable_quantity=li.unfulfilled_quantity,
        fulfillment_service="manual",
        fulfillment_status=(
            "fulfilled"
            if li.fulfilled_quantity and li.unfulfilled_quantity == 0
            else ("partial" if li.fulfilled_quantity else None)
        ),
        gift_card=li.gift_card,
        grams=li.grams,
        name=li.name,
        price=money(li.price),
        price_set=money_set(li.price, ctx.currency),
        product_exists=li.product_id is not None,
        product_id=li.product_id,
        properties=[],
        quantity=li.quantity,
        requires_shipping=li.requires_shipping,
        sku=li.sku,
        taxable=li.taxable,
        title=li.title,
        total_discount="0.00",
        total_discount_set=money_set(ZERO, ctx.currency),
        variant_id=li.variant_id,
        variant_inventory_management="shopify" if li.inventory_item_id else None,
        variant_title=li.variant_title,
        vendor=li.vendor,
        tax_lines=[],
        duties=[],
        discount_allocations=[],
    )


def _transaction(order: Order, refund: Refund, ctx: PayloadContext) -> TransactionPayload:
    gateway = "bogus" if order.test else "shopify_payments"
    stamp = rfc3339(refund.created_at, ctx.tz) or ""
    return TransactionPayload(
        id=refund.transaction_id,
        admin_graphql_api_id=gid("OrderTransaction", refund.transaction_id),
        amount=money(refund.amount),
        authorization=None,
        created_at=stamp,
        currency=order.currency,
        device_id=None,
        error_code=None,
        gateway=gateway,
        kind="refund",
        location_id=None,
        message=f"Refunded {money(refund.amount)} {order.currency} from {gateway} gateway",
        order_id=order.id,
        parent_id=None,
        payment_id=f"{order.name}.{len(order.refunds) + 1}",
        processed_at=stamp,
        receipt={},
        source_name="1830279",
        status="success",
        test=order.test,
        user_id=None,
    )


def refund_payload(
    order: Order, refund: Refund, line_items: dict[int, LineItem], ctx: PayloadContext
) -> RefundPayload:
    def refund_line(line: RefundLine) -> RefundLineItemPayload:
        return RefundLineItemPayload(
            id=line.id,
            line_item_id=line.line_item_id,
            location_id=line.location_id,
            quantity=line.quantity,
            restock_type=line.restock_type,
            subtotal=json_number(line.subtotal),
            subtotal_set=money_set(line.subtotal, ctx.currency),
            total_tax=0,
            total_tax_set=money_set(ZERO, ctx.currency),
            line_item=line_item_payload(line_items[line.line_item_id], ctx),
        )

    stamp = rfc3339(refund.created_at, ctx.tz) or ""
    return RefundPayload(
        id=refund.id,
        admin_graphql_api_id=refund.gid,
        created_at=stamp,
        note=refund.note,
        order_id=order.id,
        processed_at=stamp,
        restock=refund.restock,
        total_duties_set=money_set(ZERO, ctx.currency),
        user_id=None,
        order_adjustments=[],
        transactions=[_transaction(order, refund, ctx)] if refund.amount > 0 else [],
        refund_line_items=[refund_line(line) for line in refund.lines],
        duties=[],
        refund_shipping_lines=[],
    )


def fulfillment_payload(
    f: Fulfillment, line_items: dict[int, LineItem], ctx: PayloadContext
) -> FulfillmentPayload:
    first = f.tracking[0] if f.tracking else None
    return FulfillmentPayload(
        id=f.id,
        admin_graphql_api_id=f.gid,
        created_at=rfc3339(f.created_at, ctx.tz) or "",
        location_id=f.location_id,
        name=f.name,
        order_id=f.order_id,
        origin_address={},
        receipt={},
        service="manual",
        shipment_status=None,
        status=f.status.lower(),
        tracking_company=first.company if first else None,
        tracking_number=first.number if first else None,
        tracking_numbers=[t.number for t in f.tracking if t.number],
        tracking_url=first.url if first else None,
        tracking_urls=[t.url for t in f.tracking if t.url],
        updated_at=rfc3339(f.updated_at, ctx.tz) or "",
        line_items=[line_item_payload(line_items[fl.line_item_id], ctx) for fl in f.lines],
    )


def _address(order: Order) -> Address:
    c = order.customer
    name = f"{c.first_name} {c.last_name}".strip()
    return Address(
        first_name=c.first_name,
        address1="150 Elgin Street",
        phone=None,
        city="Ottawa",
        zip="K2P 1L4",
        province="Ontario",
        country="Canada",
        last_name=c.last_name,
        address2=None,
        company=None,
        latitude=None,
        longitude=None,
        name=name,
        country_code="CA",
        province_code="ON",
    )


def _customer(order: Order, ctx: PayloadContext) -> CustomerPayload:
    c = order.customer
    name = f"{c.first_name} {c.last_name}".strip()
    return CustomerPayload(
        id=c.id,
        email=c.email,
        created_at=rfc3339(c.created_at, ctx.tz) or "",
        updated_at=rfc3339(order.updated_at, ctx.tz) or "",
        first_name=c.first_name,
        last_name=c.last_name,
        state="disabled",
        note=None,
        verified_email=True,
        multipass_identifier=None,
        tax_exempt=False,
        phone=None,
        email_marketing_consent=MarketingConsent("not_subscribed", "single_opt_in", None),
        sms_marketing_consent=None,
        tags="",
        currency=ctx.currency,
        tax_exemptions=[],
        admin_graphql_api_id=gid("Customer", c.id),
        default_address=CustomerAddress(
            id=c.address_id,
            customer_id=c.id,
            first_name=c.first_name,
            last_name=c.last_name,
            company="",
            address1="150 Elgin Street",
            address2="",
            city="Ottawa",
            province="Ontario",
            country="Canada",
            zip="K2P 1L4",
            phone=None,
            name=name,
            province_code="ON",
            country_code="CA",
            country_name="Canada",
            default=True,
        ),
    )


def order_payload(
    order: Order,
    fulfillments: list[Fulfillment],
    line_items: dict[int, LineItem],
    ctx: PayloadContext,
) -> OrderPayload:
    cur = ctx.currency
    original = sum((li.price * li.quantity for li in order.line_items), ZERO)
    current = sum((li.price * li.current_quantity for li in order.line_items), ZERO)
    created = rfc3339(order.created_at, ctx.tz) or ""
    return OrderPayload(
        id=order.id,
        admin_graphql_api_id=order.gid,
        # 580111 is the Online Store sales channel.
        app_id=580111,
        browser_ip="203.0.113.10",
        buyer_accepts_marketing=False,
        cancel_reason=order.cancel_reason,
        cancelled_at=rfc3339(order.cancelled_at, ctx.tz),
        cart_token=None,
        checkout_id=order.checkout_id,
        checkout_token=order.checkout_token,
        client_details=ClientDetails(
            accept_language="en-US",
            browser_height=None,
            browser_ip="203.0.113.10",
            browser_width=None,
            session_hash=None,
            user_agent="Mozilla/5.0 (onhand emulator storefront)",
        ),
        closed_at=rfc3339(order.closed_at, ctx.tz),
        company=None,
        confirmation_number=order.confirmation_number,
        confirmed=True,
        contact_email=order.email,
        created_at=created,
        currency=order.currency,
        current_shipping_price_set=money_set(ZERO, cur),
        current_subtotal_price=money(current),
        current_subtotal_price_set=money_set(current, cur),
        current_total_additional_fees_set=None,
        current_total_discounts="0.00",
        current_total_discounts_set=money_set(ZERO, cur),
        current_total_duties_set=None,
        current_total_price=money(current),
        current_total_price_set=money_set(current, cur),
        current_total_tax="0.00",
        current_total_tax_set=money_set(ZERO, cur),
        customer_locale="en",
        device_id=None,
        discount_codes=[],
        duties_included=False,
        email=order.email,
        estimated_taxes=False,
        financial_status=order.financial_status,
        fulfillment_status=order.fulfillment_status,
        landing_site=None,
        landing_site_ref=None,
        location_id=None,
        merchant_business_entity_id="MTkxNzQwODY0ODEy",
        merchant_of_record_app_id=None,
        name=order.name,
        note=None,
        note_attributes=[],
        number=order.number,
        order_number=order.order_number,
        order_status_url=(
            f"https://{ctx.shop_domain}/{ctx.shop_id}/orders/{order.token}/authenticate"
            f"?key={order.token[::-1]}"
        ),
        original_total_additional_fees_set=None,
        original_total_duties_set=None,
        payment_gateway_names=["bogus"] if order.test else ["shopify_payments"],
        phone=None,
        po_number=None,
        presentment_currency=order.currency,
        processed_at=created,
        reference=None,
        referring_site=None,
        source_identifier=None,
        source_name="web",
        source_url=None,
        subtotal_price=money(original),
        subtotal_price_set=money_set(original, cur),
        tags="",
        tax_exempt=False,
        tax_lines=[],
        taxes_included=False,
        test=order.test,
        token=order.token,
        total_cash_rounding_payment_adjustment_set=money_set(ZERO, cur),
        total_cash_rounding_refund_adjustment_set=money_set(ZERO, cur),
        total_discounts="0.00",
        total_discounts_set=money_set(ZERO, cur),
        total_line_items_price=money(original),
        total_line_items_price_set=money_set(original, cur),
        total_outstanding="0.00",
        total_price=money(original),
        total_price_set=money_set(original, cur),
        total_shipping_price_set=money_set(ZERO, cur),
        total_tax="0.00",
        total_tax_set=money_set(ZERO, cur),
        total_tip_received="0.00",
        total_weight=sum(li.grams * li.quantity for li in order.line_items),
        updated_at=rfc3339(order.updated_at, ctx.tz) or "",
        user_id=None,
        billing_address=_address(order),
        customer=_customer(order, ctx),
        discount_applications=[],
        fulfillments=[fulfillment_payload(f, line_items, ctx) for f in fulfillments],
        line_items=[line_item_payload(li, ctx) for li in order.line_items],
        payment_terms=None,
        refunds=[refund_payload(order, r, line_items, ctx) for r in order.refunds],
        shipping_address=_address(order),
        shipping_lines=[],
        returns=[],
    )


def shop_payload(ctx: PayloadContext, email: str) -> ShopPayload:
    return ShopPayload(
        id=ctx.shop_id,
        name=ctx.shop_name,
        email=email,
        domain=ctx.shop_domain,
        province="Ontario",
        country="CA",
        address1="150 Elgin Street",
        zip="K2P 1L4",
        city="Ottawa",
        source=None,
        phone="5555555555",
        latitude=None,
        longitude=None,
        primary_locale="en",
        address2=None,
        created_at=None,
        updated_at=None,
        country_code="CA",
        country_name="Canada",
        currency=ctx.currency,
        customer_email=email,
        timezone="(GMT-05:00) Eastern Time (US & Canada)",
        iana_timezone=getattr(ctx.tz, "key", None),
        shop_owner="Shop Owner",
        money_format="${{amount}}",
        money_with_currency_format=f"${{{{amount}}}} {ctx.currency}",
        weight_unit="kg",
        province_code="ON",
        taxes_included=None,
        auto_configure_tax_inclusivity=None,
        tax_shipping=None,
        county_taxes=None,
        plan_display_name="Development",
        plan_name="affiliate",
        has_discounts=False,
        has_gift_cards=False,
        myshopify_domain=ctx.shop_domain,
        google_apps_domain=None,
        google_apps_login_enabled=None,
        money_in_emails_format="${{amount}}",
        money_with_currency_in_emails_format=f"${{{{amount}}}} {ctx.currency}",
        eligible_for_payments=True,
        requires_extra_payments_agreement=False,
        password_enabled=None,
        has_storefront=True,
        finances=True,
        primary_location_id=ctx.primary_location_id,
        checkout_api_supported=True,
        multi_location_enabled=ctx.locations_count > 1,
        setup_required=False,
        pre_launch_enabled=False,
        enabled_presentment_currencies=[ctx.currency],
        marketing_sms_consent_enabled_at_checkout=False,
        transactional_sms_disabled=False,
    )


def encode(payload: msgspec.Struct) -> bytes:
    """Compact JSON, as Shopify sends it; these exact bytes are what gets signed."""
    return msgspec.json.encode(payload)
