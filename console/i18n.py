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
    "inbox.from": ("from", "从"),
    "inbox.to": ("to", "至"),
    "inbox.filter_refused": ("This filter was left out:", "此筛选条件未生效："),
    "field.sla": ("SLA", "SLA"),
    "sla.state.running": ("running", "计时中"),
    "sla.state.at_risk": ("at risk", "即将超时"),
    "sla.state.breached": ("breached", "已超时"),
    "sla.state.met": ("met", "已达成"),
    "sla.state.paused": ("paused", "已暂停"),
    "sla.policy": ("Policy", "策略"),
    "sla.remaining": ("time left", "剩余时间"),
    "sla.none": ("No SLA policy applies.", "未适用 SLA 策略。"),
    "ticket.fields": ("Fields", "自定义字段"),
    "ticket.required": ("required", "必填"),
    "ticket.refused": ("Not saved:", "未保存："),
    "ticket.field_required": ("Fill in “{field}” before solving or closing the ticket.",
                              "解决或关闭工单前请先填写“{field}”。"),
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
    "nav.dashboard": ("Dashboard", "主管看板"),
    "nav.ops": ("Ops", "运维"),
    "dash.title": ("Dashboard", "主管看板"),
    "dash.queue": ("Queue now", "当前排队"),
    "dash.queue_chart": ("Waiting tickets per VIP tier and channel", "各 VIP 等级与渠道的排队工单"),
    "dash.queue_empty": ("Nothing is waiting.", "没有排队的工单。"),
    "dash.waiting": ("waiting", "排队中"),
    "dash.oldest": ("Longest wait", "最长等待"),
    "dash.queued_since": ("Oldest queued at", "最早排队时间"),
    "dash.agents": ("Agents", "客服"),
    "dash.agent": ("Agent", "客服"),
    "dash.no_agents": ("No agents.", "暂无客服。"),
    "dash.as_of": ("As of", "数据时间"),
    "dash.csv": ("Download CSV", "下载 CSV"),
    "dash.from": ("From", "开始日期"),
    "dash.to": ("To", "结束日期"),
    "dash.show": ("Show", "查看"),
    "dash.zone": ("Time zone", "时区"),
    "dash.kpis": ("KPIs", "关键指标"),
    "dash.by.day": ("per day", "按天"),
    "dash.by.channel": ("per channel", "按渠道"),
    "dash.by.agent": ("per agent", "按客服"),
    "dash.no_tickets": ("No tickets in this period.", "该时段没有工单。"),
    "kpi.volume": ("Tickets", "工单量"),
    "kpi.replied": ("Replied", "已回复"),
    "kpi.solved": ("Solved", "已解决"),
    "kpi.first_reply": ("First reply time", "首次回复时长"),
    "kpi.resolution": ("Resolution time", "解决时长"),
    "kpi.p50": ("median (p50)", "中位数 (p50)"),
    "kpi.p90": ("p90", "p90"),
    "class.email": ("Email load", "邮件负载"),
    "class.chat": ("Chat load", "会话负载"),
    "class.voice": ("Voice load", "电话负载"),
    "agent_status.online": ("online", "在线"),
    "agent_status.away": ("away", "离开"),
    "agent_status.offline": ("offline", "离线"),
    "agent_status.disabled": ("disabled", "已停用"),
    "unit.s": ("s", "秒"),
    "unit.min": ("min", "分钟"),
    "unit.h": ("h", "小时"),
    "unit.d": ("d", "天"),
    "sla.title": ("SLA at risk and breached", "SLA 风险与超时"),
    "sla.breached": ("breached", "已超时"),
    "sla.at_risk": ("at risk (due within the hour)", "即将超时（一小时内到期）"),
    "sla.metric": ("Target", "指标"),
    "sla.metric.first_reply": ("first reply", "首次回复"),
    "sla.metric.next_reply": ("next reply", "后续回复"),
    "sla.metric.resolution": ("resolution", "解决"),
    "sla.due": ("Due", "到期时间"),
    "sla.attainment": ("SLA attainment", "SLA 达成率"),
    "ops.title": ("Ops", "运维"),
    "ops.streams": ("Streams", "消息流"),
    "ops.stream": ("Stream", "消息流"),
    "ops.length": ("Length", "长度"),
    "ops.group": ("Group", "消费组"),
    "ops.lag": ("Lag", "积压"),
    "ops.pending": ("Pending", "处理中"),
    "ops.consumers": ("Consumers", "消费者"),
    "ops.oldest_pending": ("Oldest pending", "最久未确认"),
    "ops.none": ("No streams yet.", "暂无消息流。"),
    "ops.dead": ("Dead letters of this tenant", "本租户的死信"),
    "ops.dead_letter": ("Dead letter", "死信"),
    "ops.dead_stream": ("Dead-letter stream", "死信流"),
    "ops.deliveries": ("Deliveries", "投递次数"),
    "ops.failed_at": ("Failed at", "失败时间"),
    "ops.error": ("Error", "错误"),
    "ops.source": ("Source", "来源"),
    "ops.envelope": ("Envelope", "信封"),
    "ops.preview": ("Payload (start)", "内容（开头）"),
    "ops.replay": ("Replay", "重新投递"),
    "ops.drop": ("Drop", "删除"),
    "ops.replayed": ("Dead letter put back on its stream.", "死信已重新投递。"),
    "ops.dropped": ("Dead letter dropped.", "死信已删除。"),
    "ops.no_dead": ("No dead letters.", "没有死信。"),
    "ops.other_tenants": ("Dead letters of other tenants or without a readable envelope (not shown)",
                          "其他租户或无法解析的死信（不显示）"),
    "ops.heartbeats": ("Worker heartbeats", "工作进程心跳"),
    "ops.no_beats": ("No worker has a live heartbeat.", "没有存活的工作进程心跳。"),
    "ops.role": ("Role", "角色"),
    "ops.consumer": ("Consumer", "消费者"),
    "ops.beat_at": ("Last beat", "最近心跳"),
    "ops.loop_age": ("Loop age", "循环间隔"),
    "ops.counters": ("Counters", "计数"),
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


def duration(lang: str, seconds: float) -> str:
    """A span as people say it: ``45 s``, ``12 min``, ``3 h 20 min``, ``2 d 4 h`` (or in Chinese)."""
    rest = max(0, int(round(seconds)))
    units = ((86_400, "unit.d"), (3600, "unit.h"), (60, "unit.min"), (1, "unit.s"))
    first = next(n for n, (size, _) in enumerate(units) if rest >= size or size == 1)
    parts = []
    for size, key in units[first:first + 2]:  # the largest unit and the one below it
        if rest // size or not parts:
            parts.append(f"{rest // size} {t(lang, key)}")
        rest %= size
    return " ".join(parts)


def local_time(ms: int | None, tz: str) -> str:
    """Epoch milliseconds as ``2026-11-20 17:30`` in the tenant's time zone."""
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, UTC).astimezone(zone(tz)).strftime("%Y-%m-%d %H:%M")
