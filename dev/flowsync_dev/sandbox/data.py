"""Seeded ground truth for the Klaviyo sandbox: pure Python, no HTTP, deterministic given (seed, today).

Tests use this module as an independent oracle: the server renders it as JSON:API documents and
reports, and end-to-end tests compute expectations straight from it.

Statistic definitions (revision 2026-07-15 names). Additive statistics are stored per (message, day)
and summed over any range; rates are *always* recomputed from summed counts (never averaged):

==========================  ===========================================================
additive                    meaning
==========================  ===========================================================
recipients                  messages attempted (= delivered + bounced + failed)
delivered                   messages delivered
bounced                     email bounces (0 for SMS)
failed                      SMS delivery failures (0 for email)
bounced_or_failed           bounced + failed
opens / opens_unique        email opens, total / unique (0 for SMS)
clicks / clicks_unique      clicks, total / unique
conversions                 conversion events of the requested conversion metric
conversion_uniques          unique converters of the requested conversion metric
conversion_value            revenue of the requested conversion metric (2 decimals per day)
unsubscribes                unsubscribe events; unsubscribe_uniques unique unsubscribers
spam_complaints             spam complaints (email)
message_segment_count_sum   SMS segments sent (0 for email)
text_message_credit_usage_amount  SMS credits used (= segments)
text_message_spend          SMS spend in USD (2 decimals per day)
==========================  ===========================================================

rates (0.0 when the denominator is 0):
open_rate = opens_unique/delivered, click_rate = clicks_unique/delivered,
click_to_open_rate = clicks_unique/opens_unique, conversion_rate = conversion_uniques/delivered,
revenue_per_recipient = conversion_value/delivered, unsubscribe_rate = unsubscribe_uniques/delivered,
spam_complaint_rate = spam_complaints/delivered, bounce_rate = bounced/recipients,
delivery_rate = delivered/recipients, failed_rate = failed/recipients,
bounced_or_failed_rate = bounced_or_failed/recipients, average_order_value = conversion_value/conversions,
text_message_roi = conversion_value/text_message_spend.

Per-day numbers are computed lazily from a hash-seeded RNG per (seed, message, day[, metric]) so
two years of history cost no memory. Days outside [history_start, yesterday] have no activity.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

REVISION = "2026-07-15"
TIMEZONE = "America/New_York"
CURRENCY = "USD"
HISTORY_DAYS = 730

ADDITIVE_STATS: tuple[str, ...] = (
    "recipients", "delivered", "bounced", "failed", "bounced_or_failed", "opens", "opens_unique",
    "clicks", "clicks_unique", "conversions", "conversion_uniques", "conversion_value",
    "unsubscribes", "unsubscribe_uniques", "spam_complaints", "message_segment_count_sum",
    "text_message_credit_usage_amount", "text_message_spend",
)
MONEY_STATS = frozenset({"conversion_value", "text_message_spend"})
# rate name -> (numerator, denominator)
RATE_STATS: dict[str, tuple[str, str]] = {
    "open_rate": ("opens_unique", "delivered"),
    "click_rate": ("clicks_unique", "delivered"),
    "click_to_open_rate": ("clicks_unique", "opens_unique"),
    "conversion_rate": ("conversion_uniques", "delivered"),
    "revenue_per_recipient": ("conversion_value", "delivered"),
    "unsubscribe_rate": ("unsubscribe_uniques", "delivered"),
    "spam_complaint_rate": ("spam_complaints", "delivered"),
    "bounce_rate": ("bounced", "recipients"),
    "delivery_rate": ("delivered", "recipients"),
    "failed_rate": ("failed", "recipients"),
    "bounced_or_failed_rate": ("bounced_or_failed", "recipients"),
    "average_order_value": ("conversion_value", "conversions"),
    "text_message_roi": ("conversion_value", "text_message_spend"),
}
ALL_STATS: tuple[str, ...] = tuple(sorted((*ADDITIVE_STATS, *RATE_STATS)))

# SandboxAccount(formula_names=True): names a spreadsheet would run as formulas (OWASP CSV Injection)
FORMULA_FLOW_NAME = '=HYPERLINK("https://evil.example/","Welcome")'
FORMULA_CAMPAIGN_NAME = "=SUM(1,1) Flash Sale"
FORMULA_FIRST_NAME = '=HYPERLINK("https://evil.example/","Ava")'
FORMULA_LAST_NAME = "@SUM(1+1)"

_B32 = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def _h(*parts: object) -> int:
    """Stable 64-bit hash of the parts (process- and platform-independent, unlike hash())."""
    raw = "|".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "big")


def _rng(*parts: object) -> random.Random:
    return random.Random(_h(*parts))


def _u(*parts: object) -> float:
    """Uniform [0, 1) from a hash: cheaper than an RNG when one number is enough."""
    return _h(*parts) / 2.0**64


def _short_id(rng: random.Random, n: int = 6, upper: bool = False) -> str:
    alphabet = _ALNUM[:26] + _ALNUM[52:] if upper else _ALNUM
    return "".join(rng.choice(alphabet) for _ in range(n))


def _ulid(ms: int, rng: random.Random) -> str:
    """ULID-shaped id (Crockford base32, 26 chars); sorts by ``ms`` like Klaviyo's ids."""
    out = []
    t = ms
    for _ in range(10):
        out.append(_B32[t % 32])
        t //= 32
    return "".join(reversed(out)) + "".join(rng.choice(_B32) for _ in range(16))


def iso(dt: datetime) -> str:
    """ISO-8601 with explicit offset, no microseconds (Klaviyo style)."""
    return dt.replace(microsecond=0).isoformat()


def _round_money(x: float) -> float:
    return round(x + 0.0, 2)


def rates(additive: dict[str, float | int]) -> dict[str, float]:
    """Rate statistics recomputed from (summed) additive statistics; 0.0 when a denominator is 0."""
    out: dict[str, float] = {}
    for name, (num, den) in RATE_STATS.items():
        d = additive.get(den, 0) or 0
        out[name] = (additive.get(num, 0) or 0) / d if d else 0.0
    return out


def sum_stats(items: Iterable[dict[str, float | int]]) -> dict[str, float | int]:
    """Sum additive statistics; money re-rounded to 2 decimals to drop float noise."""
    total: dict[str, float | int] = dict.fromkeys(ADDITIVE_STATS, 0)
    for item in items:
        for k in ADDITIVE_STATS:
            total[k] += item.get(k, 0)
    for k in MONEY_STATS:
        total[k] = _round_money(float(total[k]))
    return total


def zero_stats() -> dict[str, float | int]:
    out: dict[str, float | int] = dict.fromkeys(ADDITIVE_STATS, 0)
    for k in MONEY_STATS:
        out[k] = 0.0
    return out


@dataclass(frozen=True)
class Tag:
    id: str
    name: str


@dataclass(frozen=True)
class Metric:
    id: str
    name: str
    integration_name: str
    integration_key: str
    integration_category: str
    created: datetime
    # conversion weight when used as conversion metric (0 → no conversions at all)
    conversion_weight: float = 0.0
    value_weight: float = 0.0


@dataclass(frozen=True)
class FlowMessage:
    """A flow message. ``action_id`` is None for messages deleted from their flow (still in reports)."""

    id: str
    name: str
    channel: str  # "email" | "sms"
    flow_id: str
    action_id: str | None
    created: datetime
    updated: datetime
    subject: str | None
    body: str | None
    active_from: date | None  # first day with activity; None → never sends (draft)
    active_to: date | None  # last day with activity; None → until yesterday
    base_volume: float = 0.0
    open_base: float = 0.0
    click_base: float = 0.0
    conv_base: float = 0.0
    aov: float = 0.0

    @property
    def deleted(self) -> bool:
        return self.action_id is None


@dataclass(frozen=True)
class FlowAction:
    id: str
    flow_id: str
    type: str  # "send-email" | "send-sms" | "time-delay"
    status: str  # live | manual | draft | disabled
    message_id: str | None
    created: datetime
    updated: datetime
    delay_days: int = 0


@dataclass(frozen=True)
class Flow:
    id: str
    name: str
    status: str  # live | manual | draft
    archived: bool
    trigger_type: str
    created: datetime
    updated: datetime
    tag_ids: tuple[str, ...]
    action_ids: tuple[str, ...]


@dataclass(frozen=True)
class CampaignMessage:
    id: str
    campaign_id: str
    channel: str
    label: str
    subject: str | None
    preview_text: str | None
    body: str | None
    created: datetime
    updated: datetime


@dataclass(frozen=True)
class Campaign:
    id: str
    name: str
    status: str  # Sent | Draft | Scheduled | Cancelled
    archived: bool
    channel: str
    created_at: datetime
    updated_at: datetime
    scheduled_at: datetime | None
    send_time: datetime | None
    included: tuple[str, ...]
    excluded: tuple[str, ...]
    tag_ids: tuple[str, ...]
    message_ids: tuple[str, ...]
    audience_size: int = 0

    @property
    def send_day(self) -> date | None:
        """Local (account timezone) day of the send, the day its statistics are attributed to."""
        if self.send_time is None:
            return None
        return self.send_time.astimezone(ZoneInfo(TIMEZONE)).date()


@dataclass(frozen=True)
class MailingList:
    id: str
    name: str
    created: datetime
    updated: datetime
    opt_in_process: str
    share: float  # fraction of profiles that are members


@dataclass(frozen=True)
class Segment:
    id: str
    name: str
    created: datetime
    updated: datetime
    is_active: bool
    is_starred: bool
    list_id: str | None


_FLOW_PLAN: list[tuple[str, str, bool, str, list[tuple[str, str]], list[str]]] = [
    # (name, status, archived, trigger, [(message name, channel)], tags)
    ("Welcome Series", "live", False, "Added to List",
     [("Welcome Email 1", "email"), ("Welcome Email 2", "email"), ("Welcome Email 3 - Discount", "email")],
     ["Core", "Retention"]),
    ("Abandoned Cart", "live", False, "Metric",
     [("Cart Reminder", "email"), ("Cart SMS Nudge", "sms"), ("Cart Last Chance", "email")],
     ["Core", "Revenue", "SMS"]),
    ("Browse Abandonment", "live", False, "Metric", [("Still Looking?", "email")], ["Revenue"]),
    ("Post-Purchase Thank You", "live", False, "Metric",
     [("Thank You", "email"), ("How to Use Your Product", "email")], ["Retention"]),
    ("Win-Back", "live", False, "Metric",
     [("We Miss You", "email"), ("Win-Back Offer", "email"), ("Final Win-Back", "email"),
      ("Win-Back SMS", "sms")], ["Retention"]),
    ("Birthday", "live", False, "Date Based", [("Happy Birthday", "email")], []),
    ("Back in Stock", "live", False, "Low Inventory", [("It's Back!", "email")], ["Revenue"]),
    ("Checkout Abandonment SMS", "live", False, "Metric",
     [("Checkout SMS 1", "sms"), ("Checkout SMS 2", "sms")], ["SMS", "Revenue"]),
    ("Price Drop", "manual", False, "Price Drop", [("Price Dropped", "email")], ["Revenue"]),
    ("Sunset Unengaged", "manual", False, "Metric",
     [("Do You Still Want Emails?", "email"), ("Last Email", "email")], ["Hygiene"]),
    ("VIP Upgrade", "draft", False, "Added to List", [("Welcome to VIP", "email")], []),
    ("Review Request", "draft", False, "Metric",
     [("Leave a Review", "email"), ("Review Reminder", "email")], []),
    ("Holiday 2024 Countdown", "live", True, "Date Based",
     [("Holiday Countdown", "email"), ("Holiday Last Call", "email")], ["Seasonal"]),
    ("Old Welcome (2023)", "manual", True, "Added to List", [("Legacy Welcome", "email")], ["Core"]),
]

_METRIC_PLAN: list[tuple[str, str, str, str, float, float]] = [
    # name, integration name, key, category, conversion weight, value weight
    ("Placed Order", "Shopify", "shopify", "eCommerce", 1.0, 1.0),
    ("Placed Order", "WooCommerce", "woocommerce", "eCommerce", 0.3, 0.9),
    ("Ordered Product", "Shopify", "shopify", "eCommerce", 1.4, 0.6),
    ("Started Checkout", "Shopify", "shopify", "eCommerce", 2.2, 1.1),
    ("Viewed Product", "Shopify", "shopify", "eCommerce", 0.0, 0.0),
    ("Opened Email", "Klaviyo", "klaviyo", "Internal", 0.0, 0.0),
    ("Clicked Email", "Klaviyo", "klaviyo", "Internal", 0.0, 0.0),
    ("Received Email", "Klaviyo", "klaviyo", "Internal", 0.0, 0.0),
    ("Unsubscribed", "Klaviyo", "klaviyo", "Internal", 0.0, 0.0),
    ("Active on Site", "API", "api", "API", 0.0, 0.0),
]

_CAMPAIGN_TOPICS = [
    "Spring Sale", "New Arrivals", "Weekly Newsletter", "Flash Sale", "Black Friday Early Access",
    "Cyber Monday", "Holiday Gift Guide", "Summer Collection", "Back to School", "Customer Favorites",
    "Restock Alert", "VIP Preview", "Free Shipping Weekend", "Product Launch", "Clearance",
    "Mother's Day", "Father's Day", "Labor Day Sale", "Memorial Day", "New Year Deals",
]


@dataclass
class SandboxAccount:
    """The whole fake Klaviyo account. Deterministic given ``seed`` and ``today``.

    ``today`` defaults to the current date in the account timezone; statistics exist for the
    ``HISTORY_DAYS`` days ending yesterday.
    """

    seed: int = 7
    today: date | None = None
    n_profiles: int = 2000
    formula_names: bool = False  # plant spreadsheet-formula names (CSV injection tests); seeded data otherwise same
    account_id: str = field(init=False)
    tz: ZoneInfo = field(init=False)
    tags: list[Tag] = field(init=False)
    metrics: list[Metric] = field(init=False)
    flows: list[Flow] = field(init=False)
    flow_actions: list[FlowAction] = field(init=False)
    flow_messages: list[FlowMessage] = field(init=False)
    campaigns: list[Campaign] = field(init=False)
    campaign_messages: list[CampaignMessage] = field(init=False)
    lists: list[MailingList] = field(init=False)
    segments: list[Segment] = field(init=False)

    def __post_init__(self) -> None:
        self.tz = ZoneInfo(TIMEZONE)
        if self.today is None:
            self.today = datetime.now(self.tz).date()
        rng = _rng(self.seed, "account")
        self.account_id = _short_id(rng, 6, upper=True)
        self._build_tags(rng)
        self._build_metrics(rng)
        self._build_flows(rng)
        self._build_lists(rng)
        self._build_campaigns(rng)
        if self.formula_names:
            self._plant_formula_names()
        self._index()
        # tuples, not dicts: ~5x smaller, so a few years x messages x metrics stay cheap to keep
        self._stats_cache = lru_cache(maxsize=250_000)(self._daily_stats_tuple)

    # ---- construction -------------------------------------------------------------------------
    @property
    def yesterday(self) -> date:
        assert self.today is not None
        return self.today - timedelta(days=1)

    @property
    def history_start(self) -> date:
        assert self.today is not None
        return self.today - timedelta(days=HISTORY_DAYS)

    def local_midnight(self, day: date) -> datetime:
        """Midnight of ``day`` in the account timezone (offset-aware)."""
        return datetime.combine(day, time(0), tzinfo=self.tz)

    def _at(self, day: date, rng: random.Random) -> datetime:
        """A local time during ``day`` expressed in UTC (how Klaviyo timestamps look)."""
        local = self.local_midnight(day) + timedelta(seconds=rng.randint(8 * 3600, 20 * 3600))
        return local.astimezone(UTC)

    def _build_tags(self, rng: random.Random) -> None:
        names = ["Core", "Revenue", "Retention", "SMS", "Seasonal", "Hygiene", "Newsletter", "Promo"]
        self.tags = []
        for name in names:
            r = rng.getrandbits(128)
            hexs = f"{r:032x}"
            tid = f"{hexs[:8]}-{hexs[8:12]}-4{hexs[13:16]}-a{hexs[17:20]}-{hexs[20:]}"
            self.tags.append(Tag(tid, name))

    def _tag_id(self, name: str) -> str:
        return next(t.id for t in self.tags if t.name == name)

    def _build_metrics(self, rng: random.Random) -> None:
        self.metrics = []
        for name, integ, key, cat, cw, vw in _METRIC_PLAN:
            created = self._at(self.history_start - timedelta(days=rng.randint(30, 400)), rng)
            self.metrics.append(Metric(_short_id(rng, 6), name, integ, key, cat, created, cw, vw))

    def _build_flows(self, rng: random.Random) -> None:
        self.flows, self.flow_actions, self.flow_messages = [], [], []
        used_action_ids: set[str] = set()

        def action_id() -> str:
            while True:
                aid = str(rng.randint(10_000_000, 99_999_999))
                if aid not in used_action_ids:
                    used_action_ids.add(aid)
                    return aid

        assert self.today is not None
        for idx, (name, status, archived, trigger, messages, tag_names) in enumerate(_FLOW_PLAN):
            fid = _short_id(rng, 6, upper=True)
            created_day = self.history_start - timedelta(days=rng.randint(-200, 120))
            if status == "draft":
                created_day = self.today - timedelta(days=rng.randint(5, 60))
            created = self._at(created_day, rng)
            # last day with activity: archived/manual flows stopped at some point in the past
            stop: date | None = None
            if archived:
                stop = self.today - timedelta(days=rng.randint(90, 300))
            elif status == "manual":
                stop = self.today - timedelta(days=rng.randint(20, 200))
            updated = self._at(min(self.yesterday, (stop or self.yesterday)), rng)
            action_ids: list[str] = []
            for m_idx, (m_name, channel) in enumerate(messages):
                if m_idx:
                    did = action_id()
                    action_ids.append(did)
                    self.flow_actions.append(FlowAction(
                        did, fid, "time-delay", status if status != "draft" else "draft", None,
                        created, updated, delay_days=rng.choice([1, 2, 3, 5, 7])))
                aid = action_id()
                action_ids.append(aid)
                msg = self._make_message(rng, fid, aid, m_name, channel, created, updated,
                                         created_day, stop, status, m_idx)
                self.flow_messages.append(msg)
                self.flow_actions.append(FlowAction(
                    aid, fid, "send-email" if channel == "email" else "send-sms",
                    status, msg.id, created, updated))
            self.flows.append(Flow(
                fid, name, status, archived, trigger, created, updated,
                tuple(self._tag_id(t) for t in tag_names), tuple(action_ids)))
            if idx == 0:
                # a message deleted from the Welcome Series: still appears in reports
                self.flow_messages.append(self._make_message(
                    rng, fid, None, "Welcome Email 2 (old version)", "email", created, updated, created_day,
                    self.today - timedelta(days=rng.randint(120, 240)), "live", 1))
            if idx == 1:
                self.flow_messages.append(self._make_message(
                    rng, fid, None, "Cart Reminder (deleted test)", "email", created, updated, created_day,
                    self.today - timedelta(days=rng.randint(30, 60)), "live", 2))

    def _make_message(self, rng: random.Random, fid: str, aid: str | None, name: str, channel: str,
                      created: datetime, updated: datetime, created_day: date, stop: date | None,
                      status: str, position: int) -> FlowMessage:
        mid = _short_id(rng, 6)
        start: date | None = max(created_day, self.history_start) + timedelta(days=rng.randint(0, 40))
        if status == "draft":
            start = None
        volume = rng.uniform(40, 900) / (1 + 0.5 * position)
        if rng.random() < 0.25:
            volume = rng.uniform(0.5, 6)  # low-volume message: many days without any send
        return FlowMessage(
            id=mid, name=name, channel=channel, flow_id=fid, action_id=aid, created=created, updated=updated,
            subject=f"{name} - {{{{ organization.name }}}}" if channel == "email" else None,
            body=f"{name}: tap to see what's new {{{{ url }}}}" if channel == "sms" else None,
            active_from=start, active_to=stop, base_volume=volume,
            open_base=rng.uniform(0.25, 0.6), click_base=rng.uniform(0.04, 0.2),
            conv_base=rng.uniform(0.01, 0.12), aov=rng.uniform(35, 140))

    def _build_lists(self, rng: random.Random) -> None:
        plan = [("Newsletter", "double_opt_in", 0.6), ("VIP Customers", "single_opt_in", 0.05),
                ("SMS Subscribers", "single_opt_in", 0.2), ("Giveaway 2024", "single_opt_in", 0.25),
                ("Empty Test List", "single_opt_in", 0.0)]
        self.lists = []
        for name, opt, share in plan:
            created = self._at(self.history_start - timedelta(days=rng.randint(1, 300)), rng)
            updated = self._at(self.yesterday - timedelta(days=rng.randint(0, 30)), rng)
            self.lists.append(MailingList(_short_id(rng, 6), name, created, updated, opt, share))
        splan = [("Engaged 30 Days", True, True, 0), ("Engaged 90 Days", True, False, 0),
                 ("Repeat Purchasers", True, True, 1), ("Unengaged 180 Days", False, False, None)]
        self.segments = []
        for name, active, starred, list_idx in splan:
            created = self._at(self.history_start + timedelta(days=rng.randint(1, 300)), rng)
            updated = self._at(self.yesterday - timedelta(days=rng.randint(0, 30)), rng)
            lid = self.lists[list_idx].id if list_idx is not None else None
            self.segments.append(Segment(_short_id(rng, 6), name, created, updated, active, starred, lid))

    def _build_campaigns(self, rng: random.Random) -> None:
        assert self.today is not None
        self.campaigns, self.campaign_messages = [], []
        audiences = [x.id for x in self.lists[:4]] + [s.id for s in self.segments]
        n = 30
        for i in range(n):
            topic = _CAMPAIGN_TOPICS[i % len(_CAMPAIGN_TOPICS)]
            channel = "sms" if i % 7 == 3 else "email"
            roll = rng.random()
            if i >= n - 2:
                status = "Scheduled"
            elif roll < 0.1:
                status = "Draft"
            elif roll < 0.16:
                status = "Cancelled"
            else:
                status = "Sent"
            # spread over the last two years, oldest first
            day = self.history_start + timedelta(days=int((i + rng.random()) * (HISTORY_DAYS - 5) / (n - 2)))
            if status == "Scheduled":
                day = self.today + timedelta(days=rng.randint(2, 20))
            day = min(day, self.yesterday) if status == "Sent" else day
            send_dt = self._at(day, rng)
            created = send_dt - timedelta(days=rng.randint(1, 10), hours=rng.randint(0, 12))
            send_time = send_dt if status in ("Sent", "Scheduled") else None
            scheduled_at = send_dt - timedelta(hours=rng.randint(1, 48)) if send_time else None
            updated = (send_dt if status != "Draft" else created) + timedelta(minutes=rng.randint(1, 90))
            cid = _ulid(int(created.timestamp() * 1000), rng)
            year = day.year
            name = f"{topic} {year}" + (" (SMS)" if channel == "sms" else "")
            included = tuple(rng.sample(audiences, rng.randint(1, 2)))
            excluded = tuple(x for x in rng.sample(audiences, 1) if x not in included) if rng.random() < 0.5 else ()
            tag_names = rng.sample(["Newsletter", "Promo", "Seasonal", "Revenue"], rng.randint(0, 2))
            mid = _ulid(int(created.timestamp() * 1000) + 1, rng)
            self.campaign_messages.append(CampaignMessage(
                mid, cid, channel, f"{topic} {'Email' if channel == 'email' else 'SMS'}",
                f"{topic}: {rng.choice(['up to 30% off', 'just for you', 'new this week', 'last chance'])}"
                if channel == "email" else None,
                "Open to see more" if channel == "email" else None,
                f"{topic}! Shop now {{{{ url }}}}" if channel == "sms" else None, created, updated))
            self.campaigns.append(Campaign(
                cid, name, status, archived=(status == "Sent" and i < 4), channel=channel, created_at=created,
                updated_at=updated, scheduled_at=scheduled_at, send_time=send_time, included=included,
                excluded=excluded, tag_ids=tuple(self._tag_id(t) for t in tag_names), message_ids=(mid,),
                audience_size=int(self.n_profiles * rng.uniform(0.8, 6.0)) + 50))

    def _plant_formula_names(self) -> None:
        """Rename the first live flow and the last sent campaign (after every RNG draw: all else is unchanged)."""
        i = next(i for i, f in enumerate(self.flows) if f.status == "live" and not f.archived)
        self.flows[i] = replace(self.flows[i], name=FORMULA_FLOW_NAME)
        j = max(i for i, c in enumerate(self.campaigns) if c.status == "Sent")
        self.campaigns[j] = replace(self.campaigns[j], name=FORMULA_CAMPAIGN_NAME)

    def _index(self) -> None:
        self.flow_by_id = {f.id: f for f in self.flows}
        self.action_by_id = {a.id: a for a in self.flow_actions}
        self.message_by_id = {m.id: m for m in self.flow_messages}
        self.metric_by_id = {m.id: m for m in self.metrics}
        self.campaign_by_id = {c.id: c for c in self.campaigns}
        self.campaign_message_by_id = {m.id: m for m in self.campaign_messages}
        self.list_by_id = {x.id: x for x in self.lists}
        self.segment_by_id = {s.id: s for s in self.segments}
        self.tag_by_id = {t.id: t for t in self.tags}

    # ---- metrics ------------------------------------------------------------------------------
    @property
    def placed_order_metric(self) -> Metric:
        """The Shopify "Placed Order" metric (the preferred conversion metric)."""
        return self.metrics[0]

    # ---- flow statistics ----------------------------------------------------------------------
    def message_active(self, message_id: str, day: date) -> bool:
        """Whether ``day`` is inside the message's sending life (activity may still be 0 that day)."""
        m = self.message_by_id[message_id]
        if m.active_from is None or day < m.active_from or day > self.yesterday or day < self.history_start:
            return False
        if m.active_to is not None and day > m.active_to:
            return False
        return self.flow_by_id[m.flow_id].status != "draft"

    def daily_stats(self, message_id: str, day: date, conversion_metric_id: str) -> dict[str, float | int]:
        """Additive statistics of one flow message on one local day for a conversion metric.

        Unknown message ids raise KeyError; an unknown metric id yields zero conversions.
        """
        return dict(zip(ADDITIVE_STATS, self._stats_cache(message_id, day, conversion_metric_id), strict=True))

    def _daily_stats_tuple(self, message_id: str, day: date, conversion_metric_id: str) -> tuple:
        stats = self._daily_stats_uncached(message_id, day, conversion_metric_id)
        return tuple(stats[k] for k in ADDITIVE_STATS)

    def _daily_stats_uncached(self, message_id: str, day: date, conversion_metric_id: str) -> dict:
        m = self.message_by_id[message_id]
        if not self.message_active(message_id, day):
            return zero_stats()
        rng = _rng(self.seed, "flowstats", message_id, day.isoformat())
        season = 1.0 + 0.25 * math.sin(2 * math.pi * day.timetuple().tm_yday / 365.25)
        weekday = (1.1, 1.05, 1.0, 1.0, 0.95, 0.85, 0.8)[day.weekday()]
        lam = m.base_volume * season * weekday
        if lam < 8:
            # few sends: Poisson by inversion (many zero days)
            k, p, s, u = 0, math.exp(-lam), math.exp(-lam), rng.random()
            while u > s and k < 60:
                k += 1
                p *= lam / k
                s += p
            recipients = k
        else:
            recipients = max(0, round(rng.gauss(lam, math.sqrt(lam) * 1.5)))
        metric = self.metric_by_id.get(conversion_metric_id)
        return self._stats_from(rng, recipients, m.channel, m.open_base, m.click_base, m.conv_base, m.aov,
                                metric, ("flow", message_id, day.isoformat()))

    def _stats_from(self, rng: random.Random, recipients: int, channel: str, open_base: float,
                    click_base: float, conv_base: float, aov: float, metric: Metric | None,
                    conv_key: tuple) -> dict[str, float | int]:
        def binom(n: int, p: float) -> int:
            if n <= 0 or p <= 0:
                return 0
            if n < 40:
                return sum(1 for _ in range(n) if rng.random() < p)
            mean = n * p
            return min(n, max(0, round(rng.gauss(mean, math.sqrt(mean * (1 - p))))))

        out = zero_stats()
        if recipients <= 0:
            return out
        if channel == "email":
            bounced = binom(recipients, rng.uniform(0.002, 0.02))
            failed = 0
        else:
            bounced = 0
            failed = binom(recipients, rng.uniform(0.005, 0.03))
        delivered = recipients - bounced - failed
        if channel == "email":
            opens_unique = binom(delivered, min(0.95, open_base * rng.uniform(0.85, 1.15)))
            opens = opens_unique + binom(opens_unique, rng.uniform(0.2, 0.8)) * rng.randint(1, 2)
            clicks_unique = binom(opens_unique, min(0.9, click_base * rng.uniform(0.7, 1.3)))
        else:
            opens_unique = opens = 0
            clicks_unique = binom(delivered, min(0.6, click_base * 0.8 * rng.uniform(0.7, 1.3)))
        clicks = clicks_unique + binom(clicks_unique, 0.3)
        unsub_unique = binom(delivered, rng.uniform(0.0005, 0.004))
        unsubs = unsub_unique + binom(unsub_unique, 0.05)
        spam = binom(delivered, 0.0003) if channel == "email" else 0
        out.update(recipients=recipients, delivered=delivered, bounced=bounced, failed=failed,
                   bounced_or_failed=bounced + failed, opens=opens, opens_unique=opens_unique, clicks=clicks,
                   clicks_unique=clicks_unique, unsubscribes=unsubs, unsubscribe_uniques=unsub_unique,
                   spam_complaints=spam)
        if channel == "sms":
            segments = delivered + binom(delivered, 0.35)
            out["message_segment_count_sum"] = segments
            out["text_message_credit_usage_amount"] = segments
            out["text_message_spend"] = _round_money(segments * 0.0107)
        if metric is not None and metric.conversion_weight > 0:
            crng = _rng(self.seed, "conv", metric.id, *conv_key)
            base = max(clicks_unique, delivered // 40)
            p = min(0.9, conv_base * metric.conversion_weight * crng.uniform(0.6, 1.4))
            cu = 0
            if base > 0:
                mean = base * p
                cu = min(delivered, max(0, round(crng.gauss(mean, math.sqrt(mean * (1 - p)) + 1e-9))))
            conversions = cu + (round(cu * crng.uniform(0.0, 0.3)) if cu else 0)
            value = sum(aov * metric.value_weight * crng.uniform(0.5, 1.8) for _ in range(conversions))
            out.update(conversion_uniques=cu, conversions=conversions, conversion_value=_round_money(value))
        return out

    def days(self, start: date, end: date) -> list[date]:
        """Inclusive list of local days."""
        return [start + timedelta(days=i) for i in range((end - start).days + 1)]

    def range_stats(self, message_id: str, start: date, end: date, conversion_metric_id: str) -> dict:
        """Additive statistics summed over the inclusive local-day range."""
        return sum_stats(self.daily_stats(message_id, d, conversion_metric_id) for d in self.days(start, end))

    def has_activity(self, message_id: str, start: date, end: date) -> bool:
        """A report grouping appears only when it had any recipients in the range."""
        metric = self.placed_order_metric.id
        return any(self.daily_stats(message_id, d, metric)["recipients"] > 0 for d in self.days(start, end)
                   if self.message_active(message_id, d))

    def live_flow_messages(self) -> list[FlowMessage]:
        """Messages still attached to a flow action (deleted messages excluded)."""
        return [m for m in self.flow_messages if not m.deleted]

    # ---- campaign statistics ------------------------------------------------------------------
    def campaign_stats(self, message_id: str, conversion_metric_id: str) -> dict[str, float | int]:
        """Additive statistics of a campaign message, all attributed to its send day (zeros unless Sent)."""
        cm = self.campaign_message_by_id[message_id]
        c = self.campaign_by_id[cm.campaign_id]
        if c.status != "Sent" or c.send_day is None or c.send_day > self.yesterday:
            return zero_stats()
        rng = _rng(self.seed, "campaignstats", message_id)
        open_base, click_base = rng.uniform(0.2, 0.5), rng.uniform(0.02, 0.1)
        conv_base, aov = rng.uniform(0.02, 0.1), rng.uniform(40, 120)
        return self._stats_from(rng, c.audience_size, c.channel, open_base, click_base, conv_base, aov,
                                self.metric_by_id.get(conversion_metric_id), ("campaign", message_id))

    # ---- profiles -----------------------------------------------------------------------------
    def _profile_created(self, i: int) -> datetime:
        span = (HISTORY_DAYS - 1) * 86400.0
        step = span / max(1, self.n_profiles)
        base = datetime.combine(self.history_start, time(0), tzinfo=UTC)
        return (base + timedelta(seconds=i * step + _u(self.seed, "pc", i) * step * 0.9)).replace(microsecond=0)

    def profile_updated(self, i: int) -> datetime:
        """``updated`` timestamp of profile ``i`` (cheap: used to filter without building profiles)."""
        created = self._profile_created(i)
        end = datetime.combine(self.yesterday, time(23, 0), tzinfo=UTC)
        span = max(0.0, (end - created).total_seconds())
        frac = _u(self.seed, "pu", i) ** 2  # skewed toward older updates: nightly deltas stay small
        return (end - timedelta(seconds=frac * span)).replace(microsecond=0)

    def profile_id(self, i: int) -> str:
        return _ulid(int(self._profile_created(i).timestamp() * 1000), _rng(self.seed, "pid", i))

    def profile(self, i: int) -> dict:
        """Profile ``i`` as ``{"id", "attributes": {..., "subscriptions": {...}}}`` (Klaviyo shapes)."""
        rng = _rng(self.seed, "profile", i)
        created = self._profile_created(i)
        updated = self.profile_updated(i)
        first = rng.choice(["Ava", "Liam", "Mia", "Noah", "Zoe", "Eli", "Ivy", "Leo", "Ada", "Max"])
        last = rng.choice(["Smith", "Lee", "Garcia", "Brown", "Khan", "Nguyen", "Rossi", "Silva"])
        email = f"{first.lower()}.{last.lower()}.{i}@example.com"
        if self.formula_names and i == 0:
            first, last = FORMULA_FIRST_NAME, FORMULA_LAST_NAME
        has_phone = rng.random() < 0.3
        phone = f"+1555{rng.randint(1000000, 9999999)}" if has_phone else None
        roll = rng.random()
        consent, suppression, list_supp = "SUBSCRIBED", [], []
        sup_ts = iso(updated)
        if roll < 0.12:
            consent = "UNSUBSCRIBED"
            suppression = [{"reason": "UNSUBSCRIBE", "timestamp": sup_ts}]
        elif roll < 0.22:
            consent = "NEVER_SUBSCRIBED"
        elif roll < 0.25:
            suppression = [{"reason": "HARD_BOUNCE", "timestamp": sup_ts}]
        elif roll < 0.27:
            suppression = [{"reason": "SPAM_COMPLAINT", "timestamp": sup_ts}]
        elif roll < 0.28:
            suppression = [{"reason": "USER_SUPPRESSED", "timestamp": sup_ts}]
        elif roll < 0.30:
            list_supp = [{"list_id": self.lists[0].id, "reason": "UNSUBSCRIBE", "timestamp": sup_ts}]
        email_marketing = {
            "can_receive_email_marketing": consent == "SUBSCRIBED" and not suppression,
            "consent": consent,
            "consent_timestamp": iso(created) if consent != "NEVER_SUBSCRIBED" else None,
            "last_updated": iso(updated),
            "method": "FORM" if consent != "NEVER_SUBSCRIBED" else None,
            "method_detail": "Signup form" if consent != "NEVER_SUBSCRIBED" else "",
            "double_optin": consent == "SUBSCRIBED" and rng.random() < 0.4,
            "suppression": suppression,
            "list_suppressions": list_supp,
        }
        sms_consent = rng.choice(["SUBSCRIBED", "SUBSCRIBED", "UNSUBSCRIBED"]) if has_phone else "NEVER_SUBSCRIBED"
        subscriptions = {
            "email": {"marketing": email_marketing},
            "sms": {
                "marketing": {
                    "can_receive_sms_marketing": sms_consent == "SUBSCRIBED",
                    "consent": sms_consent,
                    "consent_timestamp": iso(created) if has_phone else None,
                    "method": "TEXT" if has_phone else None,
                    "method_detail": "",
                    "last_updated": iso(updated) if has_phone else None,
                },
                "transactional": {
                    "can_receive_sms_transactional": has_phone,
                    "consent": "SUBSCRIBED" if has_phone else "NEVER_SUBSCRIBED",
                    "consent_timestamp": iso(created) if has_phone else None,
                    "method": None, "method_detail": "", "last_updated": None,
                },
            },
            "mobile_push": {"marketing": {"can_receive_push_marketing": False, "consent": "NEVER_SUBSCRIBED",
                                          "consent_timestamp": None}},
        }
        attributes = {
            "email": email, "phone_number": phone, "external_id": None, "first_name": first, "last_name": last,
            "organization": None, "locale": "en-US", "title": None, "image": None,
            "created": iso(created), "updated": iso(updated), "last_event_date": iso(updated),
            "location": {"address1": None, "address2": None, "city": rng.choice(["Boston", "Austin", "Denver"]),
                         "country": "United States", "region": None, "zip": None, "timezone": TIMEZONE,
                         "ip": None, "latitude": None, "longitude": None},
            "properties": {"source": rng.choice(["popup", "checkout", "import"])},
            "subscriptions": subscriptions,
        }
        return {"id": self.profile_id(i), "attributes": attributes}

    @property
    def profiles(self) -> Iterator[dict]:
        """All profiles in id (= creation) order, streamed."""
        return (self.profile(i) for i in range(self.n_profiles))

    def is_member(self, list_id: str, i: int) -> bool:
        lst = self.list_by_id[list_id]
        if lst.name == "SMS Subscribers":
            # members are the profiles with a phone number (and a bit of noise)
            return self.profile(i)["attributes"]["phone_number"] is not None and _u(self.seed, "m", list_id, i) < 0.8
        return _u(self.seed, "m", list_id, i) < lst.share

    def list_member_indexes(self, list_id: str, start: int = 0) -> Iterator[int]:
        for i in range(start, self.n_profiles):
            if self.is_member(list_id, i):
                yield i

    def list_members(self, list_id: str) -> Iterator[str]:
        """Profile ids of a list's members, in id order, streamed."""
        return (self.profile_id(i) for i in self.list_member_indexes(list_id))

    def joined_group_at(self, list_id: str, i: int) -> datetime:
        created = self._profile_created(i)
        return created + timedelta(seconds=int(_u(self.seed, "j", list_id, i) * 86400 * 3))


def timeframe_key_days(key: str, today: date) -> tuple[date, date]:
    """Inclusive local-day range of a Klaviyo ``Timeframe`` key (weeks start on Monday)."""
    y = today - timedelta(days=1)
    first_of_month = today.replace(day=1)
    last_month_end = first_of_month - timedelta(days=1)

    def months_back(n: int) -> date:
        m = today.month - n
        yr = today.year + (m - 1) // 12
        m = (m - 1) % 12 + 1
        return date(yr, m, min(today.day, 28))

    table = {
        "today": (today, today),
        "yesterday": (y, y),
        "last_7_days": (today - timedelta(days=7), y),
        "last_30_days": (today - timedelta(days=30), y),
        "last_90_days": (today - timedelta(days=90), y),
        "last_365_days": (today - timedelta(days=365), y),
        "this_week": (today - timedelta(days=today.weekday()), today),
        "last_week": (today - timedelta(days=today.weekday() + 7), today - timedelta(days=today.weekday() + 1)),
        "this_month": (first_of_month, today),
        "last_month": (last_month_end.replace(day=1), last_month_end),
        "last_3_months": (months_back(3), y),
        "last_12_months": (months_back(12), y),
        "this_year": (date(today.year, 1, 1), today),
        "last_year": (date(today.year - 1, 1, 1), date(today.year - 1, 12, 31)),
    }
    return table[key]
