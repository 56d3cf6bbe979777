"""Headings of the text output in English and Chinese: one table for every command (and for
reports), so a term is translated once and the same way everywhere.

The Chinese terms are those of Chinese asset-backed securities trust documents (信托合同, 发行说明书)
and rating reports. Tranche names, scenario and stress names, rating symbols and numbers are
never translated: they are printed as the deal file or the rating table gives them.
"""

from __future__ import annotations

__all__ = ["LANGUAGES", "ZH", "label", "labels"]

LANGUAGES = ("en", "zh")
"""Languages of the text output (``--lang``)."""

ZH: dict[str, str] = {
    # the deal and its securities
    "tranche": "证券档次",
    "balance": "本金余额",
    "coupon": "票面利率",
    "pool": "资产池",
    "size": "规模",
    "subordination": "次级支持",
    "final payment": "最后兑付日",
    "interest paid": "已付利息",
    "principal+residual": "已付本金及剩余收益",
    # cash-flow and risk measures
    "loss": "损失",
    "loss %": "损失率",
    "yield": "收益率",
    "mean yield": "平均收益率",
    "WAL (y)": "加权平均期限（年）",
    "E[WAL] (y)": "预期加权平均期限（年）",
    "expected loss": "预期损失",
    "probability of loss": "损失概率",
    "P(loss)": "损失概率",
    "pool loss": "资产池损失",
    "standard error": "标准误",
    "se": "标准误",
    "limit": "上限",
    "meets": "是否达标",
    # ratings
    "rating": "评级",
    "alias": "对应符号",
    "EL rating": "预期损失评级",
    "PD rating": "违约概率评级",
    "PD": "违约概率",
    "range": "区间",
    "95% interval": "95%置信区间",
    "multiple": "倍数",
    "TDR quantile": "目标违约率（分位数）",
    "TDR multiple": "目标违约率（倍数）",
    "rating (TDR quantile)": "评级（目标违约率分位数）",
    "rating (TDR multiple)": "评级（目标违约率倍数）",
    # stresses and breakeven
    "stress": "压力情景",
    "timing": "违约时间分布",
    "recovery haircut": "回收率折减",
    "lag +m": "回收延迟（月）",
    "rate shock": "利率冲击",
    "max feasible": "最大可行违约率",
    "BDR": "临界违约率",
    "loss above BDR": "超过临界违约率时的损失",
    # reports (ipabs report): sections, sheets and columns
    "report": "分析报告",
    "deal terms": "交易要素",
    "assumptions": "基本假设",
    "scenarios": "现金流情景",
    "risk model": "风险模型",
    "cash flows": "现金流",
    "base case": "基准情景",
    "stress scenario": "压力情景",
    "Monte Carlo": "蒙特卡洛模拟",
    "ratings": "评级",
    "breakeven": "临界违约率",
    "sizing": "结构设计",
    "triggers": "触发事件",
    "pricing": "定价",
    "charts": "图表",
    "warnings": "警示",
    "notes": "说明",
    "summary": "概要",
    "pool cash flows": "资产池现金流",
    "tranche cash flows": "现金流分配表",
    "Monte Carlo summary": "蒙特卡洛模拟结果",
    "loss distribution": "损失分布",
    "sensitivities": "敏感性分析",
    "item": "项目",
    "value": "数值",
    "deal": "交易名称",
    "currency": "币种",
    "closing date": "信托设立日",
    "first payment date": "首个兑付日",
    "payment frequency": "兑付频率",
    "legal final date": "法定到期日",
    "day count": "计息基准",
    "scenario": "情景",
    "period": "期数",
    "payment date": "兑付日",
    "interest": "利息",
    "principal": "本金",
    "fees": "税费",
    "reserve": "储备金",
    "account balance": "账户余额",
    "paid": "已付",
    "pool interest": "资产池利息回收",
    "scheduled principal": "资产池本金回收",
    "prepayment": "早偿",
    "recovery": "违约回收",
    "guarantee": "担保代偿",
    "risk sharing": "风险补偿",
    "insurance": "保证保险赔付",
    "royalty": "许可费收入",
    "defaults": "违约金额",
    "pool balance": "资产池余额",
    "collateral value": "抵质押物价值",
    "delinquent 30-59 days": "逾期30-59天",
    "delinquent 60-89 days": "逾期60-89天",
    "delinquent 90+ days": "逾期90天以上",
    "servicer advances outstanding": "服务机构垫款余额",
    "paths": "模拟路径数",
    "seed": "随机数种子",
    "sampling": "抽样方法",
    "metric": "指标",
    "estimate": "估计值",
    "95% low": "95%下限",
    "95% high": "95%上限",
    "loss rate from": "损失率下限",
    "loss rate to": "损失率上限",
    "probability": "概率",
    "cumulative probability": "累计概率",
    "kind": "类型",
    "first active date": "首次触发日",
    "periods active": "触发期数",
    "fired": "已触发",
    "not fired": "未触发",
    "target": "目标评级",
    "size found": "规模结果",
    "does not apply": "不适用",
    "not asked": "未要求",
    "files": "文件",
    "subject": "对象",
    "ci low": "置信区间下限",
    "ci high": "置信区间上限",
    "diagnostics": "诊断",
    "rating table": "评级表",
    "loss quantile": "损失分位数",
    "expected shortfall": "预期尾部损失",
    "expected defaults": "预期违约笔数",
    "price": "价格",
    "duration": "久期",
    "modified duration": "修正久期",
    "convexity": "凸性",
    "first principal date": "首次还本日",
    "last principal date": "末次还本日",
    "priced at par on the base case; not priced": "以基准情景按面值定价；未能定价",
    # ---- surveillance: a state on a report date (check-state)
    "at closing": "初始本金",
    "factor": "本金余额比例",
    "interest arrears": "拖欠利息",
    "status": "资产状态",
    "loans": "笔数",
    # ---- early warning (ipabs monitor)
    "early warning": "风险预警",
    "EL at closing": "发行时预期损失",
    "EL now": "当前预期损失",
    "P(loss) now": "当前损失概率",
    "rating at closing": "发行时隐含评级",
    "now": "当前隐含评级",
    "range now": "当前评级区间",
    "drift": "评级迁移",
    "trigger": "触发事件",
    "in effect now": "当前是否触发",
    "3 months": "3个月内",
    "6 months": "6个月内",
    "12 months": "12个月内",
    "obligor": "借款人",
    "dpd": "逾期天数",
    "coverage": "质押覆盖倍数",
    "contribution": "风险贡献",
    "of EL": "占预期损失比例",
    "largest obligors": "最大借款人",
    "industry": "行业",
    "share": "占比",
}
"""English heading -> Chinese heading."""

_SE = " ± se"


def label(text: str, lang: str = "en") -> str:
    """The heading ``text`` in ``lang``.

    Headings missing from :data:`ZH` are printed as given (a swept parameter's path, a tranche
    name); ``"X ± se"`` is translated part by part, and a horizon such as ``"5y"`` becomes
    ``"5年"``.

    Parameters
    ----------
    text : str
        An English heading.
    lang : {"en", "zh"}
        Language of the output.

    Returns
    -------
    str

    Examples
    --------
    >>> label("expected loss ± se", "zh"), label("5y", "zh"), label("tranche", "en")
    ('预期损失 ± 标准误', '5年', 'tranche')
    """
    if lang == "en":
        return text
    if lang != "zh":
        raise ValueError(f"unknown language {lang!r}; known: {', '.join(LANGUAGES)}")
    if text in ZH:
        return ZH[text]
    if text.endswith(_SE):
        return f"{label(text[: -len(_SE)], lang)} ± {ZH['se']}"
    if text.endswith("y") and _is_number(text[:-1]):
        return f"{text[:-1]}年"
    return text


def labels(texts: list[str], lang: str = "en") -> list[str]:
    """:func:`label` of each heading."""
    return [label(t, lang) for t in texts]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
