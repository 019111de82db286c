"""The console's two languages: English and Simplified Chinese, picked per request.

A catalogue of our own rather than Babel: two languages and about a hundred strings need no
.po/.mo compile step, and a test checks every key has both translations and every key the
templates use exists. The cookie (set by the language links) wins over Accept-Language.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiohttp import web

LANGUAGES = ("en", "zh")
DEFAULT = "en"
COOKIE = "sb_lang"

# key -> (English, 简体中文)
CATALOGUE: dict[str, tuple[str, str]] = {
    "app.name": ("Switchboard console", "Switchboard 客服台"),
    "nav.inbox": ("Inbox", "工单"),
    "nav.sign_out": ("Sign out", "退出"),
    "nav.signed_in_as": ("Signed in as", "当前用户"),
    "lang.en": ("English", "English"),
    "lang.zh": ("中文", "中文"),
    "role.agent": ("agent", "客服"),
    "role.supervisor": ("supervisor", "主管"),
    "role.admin": ("admin", "管理员"),
    "login.title": ("Sign in", "登录"),
    "login.email": ("Email", "邮箱"),
    "login.password": ("Password", "密码"),
    "login.submit": ("Sign in", "登录"),
    "login.failed": ("Wrong email or password.", "邮箱或密码错误。"),
    "login.limited": ("Too many failed sign-ins. Try again in a few minutes.", "登录失败次数过多，请几分钟后再试。"),
    "error.title": ("Error", "出错了"),
    "error.csrf": ("This form has expired or did not come from this site. Reload the page and try again.",
                   "表单已过期或并非来自本站。请刷新页面后重试。"),
    "error.signed_out": ("You are signed out. Sign in again.", "您已退出登录，请重新登录。"),
    "error.not_found": ("Not found.", "页面不存在。"),
    "error.back": ("Back to the inbox", "返回工单列表"),
    "inbox.title": ("Inbox", "工单列表"),
    "inbox.tab.mine": ("My tickets", "我的工单"),
    "inbox.tab.queue": ("Queue", "待领取"),
    "inbox.tab.all": ("All tickets", "全部工单"),
    "inbox.search": ("Search customer, subject, text", "搜索客户、主题、内容"),
    "inbox.filter": ("Filter", "筛选"),
    "inbox.any": ("any", "全部"),
    "inbox.empty": ("No tickets.", "没有工单。"),
    "inbox.live": ("Live", "实时"),
    "inbox.newer": ("Newer", "上一页"),
    "inbox.older": ("Older", "下一页"),
    "inbox.page": ("Page", "第几页"),
    "field.number": ("#", "编号"),
    "field.subject": ("Subject", "主题"),
    "field.customer": ("Customer", "客户"),
    "field.status": ("Status", "状态"),
    "field.channel": ("Channel", "渠道"),
    "field.priority": ("Priority", "优先级"),
    "field.vip": ("VIP tier", "VIP 等级"),
    "field.tags": ("Tags", "标签"),
    "field.assignee": ("Assignee", "处理人"),
    "field.updated": ("Last activity", "最近活动"),
    "field.created": ("Created", "创建时间"),
    "field.identities": ("Identities", "身份"),
    "status.new": ("new", "新建"),
    "status.open": ("open", "处理中"),
    "status.pending": ("pending", "等待中"),
    "status.solved": ("solved", "已解决"),
    "status.closed": ("closed", "已关闭"),
    "channel.email": ("Email", "邮件"),
    "channel.wechat": ("WeChat", "微信"),
    "channel.weibo": ("Weibo", "微博"),
    "channel.webform": ("Web form", "网页表单"),
    "channel.voice": ("Phone", "电话"),
    "channel.sdk": ("App", "应用内"),
    "channel.sms": ("SMS", "短信"),
    "ticket.title": ("Ticket", "工单"),
    "ticket.unassigned": ("unassigned", "未分配"),
    "ticket.timeline": ("Conversation", "会话记录"),
    "ticket.inbound": ("from the customer", "客户来信"),
    "ticket.reply": ("reply", "回复"),
    "ticket.note": ("internal note", "内部备注"),
    "ticket.attachments": ("Attachments", "附件"),
    "ticket.recording": ("Call recording", "通话录音"),
    "ticket.threading": ("Why this message is on this ticket", "为何归入此工单"),
    "ticket.routing": ("Routing", "分配记录"),
    "ticket.waiting": ("Waiting in the queue since", "排队开始于"),
    "ticket.no_decisions": ("No routing decisions yet.", "暂无分配记录。"),
    "ticket.delivery": ("Delivery", "发送状态"),
    "ticket.compose": ("Answer", "回复客户"),
    "ticket.kind.reply": ("Reply to the customer", "回复客户"),
    "ticket.kind.note": ("Internal note", "内部备注"),
    "ticket.send_on": ("Send on", "发送渠道"),
    "ticket.customer_channel": ("the customer's channel", "客户所用渠道"),
    "ticket.send": ("Send", "发送"),
    "ticket.save": ("Save", "保存"),
    "ticket.assign": ("Assign", "分配"),
    "ticket.take": ("Take it", "我来处理"),
    "ticket.nobody": ("nobody", "不分配"),
    "ticket.tags_help": ("comma separated", "以逗号分隔"),
    "ticket.saved": ("Saved.", "已保存。"),
    "ticket.sent": ("Queued for sending.", "已排队发送。"),
    "ticket.noted": ("Note added.", "备注已添加。"),
    "ticket.empty_text": ("Write something first.", "请先输入内容。"),
    "ticket.bad_value": ("That value is not allowed.", "该值无效。"),
    "delivery.queued": ("queued", "排队中"),
    "delivery.sent": ("sent", "已发送"),
    "delivery.delivered": ("delivered", "已送达"),
    "delivery.failed": ("failed", "发送失败"),
    "delivery.attempts": ("attempts", "尝试次数"),
}


def t(lang: str, key: str) -> str:
    """The text of ``key`` in ``lang``; an unknown key is a bug, so it fails loudly."""
    english, chinese = CATALOGUE[key]
    return chinese if lang == "zh" else english


def label(lang: str, prefix: str, value: str) -> str:
    """A stored value's name (a status, a channel), or the value itself when it has none."""
    key = f"{prefix}.{value}"
    return t(lang, key) if key in CATALOGUE else value


def _accepted(header: str) -> list[tuple[float, str]]:
    """Accept-Language ranges with their weights (RFC 9110 §12.5.4), best first."""
    ranked = []
    for n, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        if tag:
            ranked.append((-q, n, tag.strip().lower()))
    return [(-q, tag) for q, _, tag in sorted(ranked) if q < 0]


def language(request: web.Request) -> str:
    chosen = request.cookies.get(COOKIE)
    if chosen in LANGUAGES:
        return chosen
    for _, tag in _accepted(request.headers.get("Accept-Language", "")):
        primary = tag.split("-")[0]
        if primary in LANGUAGES:
            return primary
    return DEFAULT


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def local_time(ms: int | None, tz: str) -> str:
    """Epoch milliseconds as ``2026-11-20 17:30`` in the tenant's time zone."""
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, UTC).astimezone(zone(tz)).strftime("%Y-%m-%d %H:%M")
