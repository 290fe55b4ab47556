"""The report's words in both languages: Simplified Chinese (the default) and English.

One entry per message: {"zh-CN": ..., "en": ...}. Placeholders are `str.format` fields and
carry already-formatted values (money, dates). `tests/test_report.py` checks that both
languages have every message and the same placeholders, so neither can fall behind.
"""

from __future__ import annotations

from typing import Final

LANGUAGES: Final = ("zh-CN", "en")
DEFAULT_LANGUAGE: Final = "zh-CN"

MESSAGES: Final[dict[str, dict[str, str]]] = {
    # --- header and footer ------------------------------------------------------------------
    "title": {
        "zh-CN": "客户调整个人分析报告",
        "en": "Personal analysis report: reassignment of your customers",
    },
    "prepared_for": {
        "zh-CN": "致：{name}（工号 {no}）",
        "en": "For: {name} (employee no. {no})",
    },
    "request_ref": {
        "zh-CN": "调整申请 #{id}，提交于 {at}",
        "en": "Reassignment request #{id}, submitted {at}",
    },
    "page_footer": {
        "zh-CN": "调整申请 #{id} · 个人分析报告",
        "en": "Request #{id} · personal analysis report",
    },
    "page_word": {"zh-CN": "第 ", "en": "Page "},
    "page_of": {"zh-CN": " 页，共 ", "en": " of "},
    "page_end": {"zh-CN": " 页", "en": ""},
    "intro": {
        "zh-CN": "本报告说明公司提议将您负责的哪些客户调整给其他销售、原因、生效时间，以及这对"
                 "您收入的影响和公司提供的补偿。请在沟通期结束前阅读。如有异议，您可以申诉；"
                 "未经您签字同意，客户归属不会改变。",
        "en": "This report explains which of your customers the company proposes to move to "
              "another salesperson, why, from when, what it means for your income and what "
              "compensation is offered. Please read it before the communication window ends. "
              "You may appeal, and without your signature the customers stay with you.",
    },
    # --- summary ---------------------------------------------------------------------------
    "summary": {"zh-CN": "要点", "en": "At a glance"},
    "customers_moving": {"zh-CN": "调整的客户", "en": "Customers to move"},
    "customer_count": {"zh-CN": "{count} 个客户：", "en": "{count} customer(s):"},
    "receiver": {"zh-CN": "接收销售", "en": "Receiving salesperson"},
    "requester": {"zh-CN": "申请人", "en": "Requested by"},
    "reason": {"zh-CN": "调整原因", "en": "Reason"},
    "effective_date": {"zh-CN": "生效日期", "en": "Effective date"},
    "protection": {"zh-CN": "保护期", "en": "Protection period"},
    "protection_value": {
        "zh-CN": "{period}，期间您保留提成的 {share}",
        "en": "{period}, during which you keep {share} of your commission",
    },
    "projected_loss": {"zh-CN": "预计收入减少", "en": "Projected loss of income"},
    "compensation_offered": {"zh-CN": "提供的补偿", "en": "Compensation offered"},
    "appeal_by": {"zh-CN": "申诉截止", "en": "Appeal by"},
    "sign_by": {"zh-CN": "签字截止", "en": "Sign by"},
    "pending_short": {"zh-CN": "评估尚未完成", "en": "assessment pending"},
    "consent_notice": {
        "zh-CN": "未经您签字，客户归属不会改变。如果您在签字截止前不签字或拒绝签字，一切维持"
                 "原状，人力资源部会收到通知。",
        "en": "Ownership never moves without your signature. If you decline, or do not sign by "
              "the deadline, everything stays as it is and HR is told.",
    },
    # --- 1. what and why --------------------------------------------------------------------
    "sec_what": {"zh-CN": "1. 调整内容与原因", "en": "1. What is proposed, and why"},
    "what_text": {
        "zh-CN": "{requester}提议将以下 {count} 个客户从您名下调整给{receiver}。",
        "en": "{requester} proposes to move the {count} customer(s) below from you to "
              "{receiver}.",
    },
    "note_from_requester": {"zh-CN": "申请人说明", "en": "Note from the requester"},
    "reason_TERRITORY_REALIGNMENT": {"zh-CN": "区域调整", "en": "Territory realignment"},
    "reason_PERFORMANCE": {"zh-CN": "业绩原因", "en": "Performance"},
    "reason_WORKLOAD_BALANCING": {"zh-CN": "工作量平衡", "en": "Workload balancing"},
    "reason_CUSTOMER_REQUEST": {"zh-CN": "客户要求", "en": "At the customer's request"},
    "reason_EMPLOYEE_DEPARTURE": {"zh-CN": "员工离职交接", "en": "Departure handover"},
    # --- 2. customers ----------------------------------------------------------------------
    "sec_customers": {"zh-CN": "2. 客户历史与价值", "en": "2. Your customers' history and value"},
    "history_window": {
        "zh-CN": "历史数据为 {first} 至 {last} 共 {months} 个完整月份（按{tz}统计）。收入为"
                 "订单金额减去退款。",
        "en": "History covers the {months} full months from {first} to {last} ({tz}). "
              "Revenue is order amounts net of refunds.",
    },
    "col_code": {"zh-CN": "客户编号", "en": "Code"},
    "col_customer": {"zh-CN": "客户名称", "en": "Customer"},
    "col_orders_12m": {"zh-CN": "订单数", "en": "Orders"},
    "col_revenue_12m": {"zh-CN": "收入", "en": "Revenue"},
    "col_tier": {"zh-CN": "价值等级", "en": "Tier"},
    "col_expected": {"zh-CN": "未来 {months} 个月预计收入",
                     "en": "Expected revenue, next {months} months"},
    "col_rate": {"zh-CN": "您的提成比例", "en": "Your rate"},
    "method_BG_NBD_GG": {"zh-CN": "BG/NBD + Gamma-Gamma 模型", "en": "BG/NBD + Gamma-Gamma model"},
    "method_RUN_RATE": {"zh-CN": "历史平均（数据不足时的后备方法）",
                        "en": "Run rate (fallback for short histories)"},
    "total": {"zh-CN": "合计", "en": "Total"},
    "chart_orders": {"zh-CN": "每月订单数", "en": "Orders per month"},
    "chart_revenue": {"zh-CN": "每月收入（元）", "en": "Revenue per month (¥)"},
    "no_orders": {"zh-CN": "此期间无订单", "en": "no orders in this period"},
    "customer_heading": {"zh-CN": "{name}（{code}）", "en": "{name} ({code})"},
    "customer_facts": {
        "zh-CN": "近 {months} 个月：{orders} 笔订单，收入 {revenue}。",
        "en": "Last {months} months: {orders} order(s), {revenue} revenue.",
    },
    "method_line": {"zh-CN": "测算方法：{method}。", "en": "Method: {method}."},
    "customer_value": {
        "zh-CN": "价值等级 {tier}；未来 {horizon} 个月预计收入 {expected}；累计收入 {lifetime}。",
        "en": "Tier {tier}; expected revenue over the next {horizon} months {expected}; "
              "lifetime revenue {lifetime}.",
    },
    # --- 3. effective date -----------------------------------------------------------------
    "sec_effective": {"zh-CN": "3. 生效日期", "en": "3. When it takes effect"},
    "effective_known": {
        "zh-CN": "调整已于 {at} 生效。",
        "en": "The reassignment took effect on {at}.",
    },
    "effective_estimate": {
        "zh-CN": "最早在沟通期结束时生效，即 {at}，且须经您签字同意。如果您在沟通期结束后签字，"
                 "则在签字时生效。",
        "en": "At the earliest when the communication window ends, on {at}, and only once you "
              "have signed. If you sign after the window, it takes effect when you sign.",
    },
    "effective_short_estimate": {"zh-CN": "预计 {at}，须经您签字",
                                 "en": "{at} (estimated; needs your signature)"},
    "sign_deadline_text": {
        "zh-CN": "签字截止时间为 {at}。",
        "en": "The deadline for your signature is {at}.",
    },
    # --- 4. protection -----------------------------------------------------------------------
    "sec_protection": {"zh-CN": "4. 保护期及其金额", "en": "4. The protection period in money"},
    "protection_text": {
        "zh-CN": "生效后的 {period} 为保护期，预计至 {end}。保护期内，这些客户的订单您仍可"
                 "按原提成比例的 {share} 获得提成；保护期结束后提成全部归接收销售。",
        "en": "For {period} after the transfer takes effect, until about {end}, you are in "
              "protection: on these customers' orders you still earn {share} of the commission "
              "at your rate. After protection, all of it goes to the receiving salesperson.",
    },
    "protection_by_customer": {"zh-CN": "按客户的每月金额", "en": "Per customer, per month"},
    "col_monthly_expected": {"zh-CN": "每月预计收入", "en": "Expected revenue / month"},
    "col_monthly_commission": {"zh-CN": "不调整时每月提成",
                               "en": "Commission / month without the move"},
    "col_monthly_kept": {"zh-CN": "保护期内每月保留", "en": "You keep / month in protection"},
    "protection_by_month": {"zh-CN": "保护期逐月金额", "en": "Month by month through protection"},
    "col_month": {"zh-CN": "月份", "en": "Month"},
    "col_from_to": {"zh-CN": "期间", "en": "Dates"},
    "col_share_of_month": {"zh-CN": "月数", "en": "Months"},
    "col_without_move": {"zh-CN": "不调整时的提成", "en": "Commission without the move"},
    "col_kept": {"zh-CN": "您保留", "en": "You keep"},
    "col_difference": {"zh-CN": "差额", "en": "Difference"},
    "month_n": {"zh-CN": "第 {n} 个月", "en": "Month {n}"},
    "protection_month_note": {
        "zh-CN": "每月金额 = 每月预计收入 × 您的提成比例 × 保护期分成比例 {share}。这里的“月”"
                 "是平均月（30.44 天），与收入影响评估一致；各行按分四舍五入，末行含舍入差。",
        "en": "Each month: expected monthly revenue × your rate × the protection share {share}. "
              "A month here is the average month (30.44 days), as in the impact assessment; "
              "rows are rounded to the fen and the last row carries the rounding difference.",
    },
    "protection_beyond_horizon": {
        "zh-CN": "保护期超过评估期 {months} 个月，超出部分未作预测。",
        "en": "Protection runs beyond the {months}-month assessment horizon; the months after "
              "it are not projected.",
    },
    "protection_none": {
        "zh-CN": "本次调整没有保护期。",
        "en": "There is no protection period for this reassignment.",
    },
    "protection_pending": {
        "zh-CN": "收入影响评估尚未完成，逐月金额将在评估完成后的新版本报告中列出。",
        "en": "The impact assessment is still pending; a new version of this report will show "
              "the amounts month by month.",
    },
    # --- 5. impact and compensation -----------------------------------------------------------
    "sec_impact": {"zh-CN": "5. 收入影响与补偿", "en": "5. Your projected income and compensation"},
    "impact_pending": {
        "zh-CN": "收入影响与补偿评估尚未完成。评估完成后，您会收到本报告的新版本。",
        "en": "The assessment of your income impact and compensation is still pending. You will "
              "receive a new version of this report once it is done.",
    },
    "impact_projected": {
        "zh-CN": "不调整时，未来 {months} 个月的预计提成",
        "en": "Projected commission over the next {months} months without the move",
    },
    "impact_kept": {"zh-CN": "保护期内保留的提成", "en": "Kept through protection"},
    "impact_loss": {"zh-CN": "预计收入减少", "en": "Projected loss"},
    "impact_text": {
        "zh-CN": "未来 {months} 个月，这些客户预计带来 {expected} 的收入。按您现在的提成比例，"
                 "您可获得 {projected} 的提成。保护期内您保留 {kept}，因此预计收入减少 {loss}。",
        "en": "Over the next {months} months these customers are expected to bring {expected} "
              "of revenue. At your current rates you would earn {projected} commission on it. "
              "Through protection you keep {kept}, so the projected loss is {loss}.",
    },
    "offered_terms": {"zh-CN": "您的调整条款", "en": "Your terms"},
    "offered_terms_text": {
        "zh-CN": "保护期 {period}，分成比例 {share}，一次性补偿 {lump}。",
        "en": "Protection {period} at a share of {share}, and a one-off payment of {lump}.",
    },
    "suggested": {"zh-CN": "按政策公式建议的补偿：{kind}",
                  "en": "Compensation suggested by the policy formula: {kind}"},
    "alternatives": {"zh-CN": "可选方案", "en": "Alternatives"},
    "alternatives_text": {
        "zh-CN": "以下方案均按同一评估计算。您可以在申诉中提出选择其中某一方案。",
        "en": "Every option below is computed from the same assessment. You may ask for one "
              "of them in an appeal.",
    },
    "col_option": {"zh-CN": "方案", "en": "Option"},
    "col_terms": {"zh-CN": "条款", "en": "Terms"},
    "col_option_kept": {"zh-CN": "保护期保留", "en": "Kept through protection"},
    "col_lump": {"zh-CN": "一次性补偿", "en": "One-off payment"},
    "col_remaining_loss": {"zh-CN": "剩余损失", "en": "Loss remaining"},
    "col_cost": {"zh-CN": "公司成本", "en": "Cost to the company"},
    "kind_LUMP_SUM": {"zh-CN": "一次性补偿", "en": "One-off payment"},
    "kind_LONGER_PROTECTION": {"zh-CN": "延长保护期", "en": "Longer protection"},
    "kind_HIGHER_SHARE": {"zh-CN": "提高分成比例", "en": "Higher share"},
    "kind_COMBINED": {"zh-CN": "组合方案", "en": "Combination"},
    "terms_cell": {"zh-CN": "保护期 {period}，分成 {share}", "en": "{period} at {share}"},
    "suggested_mark": {"zh-CN": "（建议）", "en": " (suggested)"},
    # --- 6. appeal ----------------------------------------------------------------------------
    "sec_appeal": {"zh-CN": "6. 如何申诉，截止何时", "en": "6. How to appeal, and by when"},
    "appeal_deadline": {
        "zh-CN": "申诉截止时间：{at}",
        "en": "Appeal deadline: {at}",
    },
    "appeal_how": {
        "zh-CN": "在沟通期内，您可以在 Baton 中对本申请提出申诉（接口：POST {path}），写明理由，"
                 "例如对客户价值、收入测算或补偿的异议，或希望选择的方案。申诉由人力资源部处理，"
                 "可能维持、修改条款或取消本次调整。申诉期间不会要求您签字。",
        "en": "During the communication window you can appeal this request in Baton (API: "
              "POST {path}) and say why: for example, you dispute the customers' value, the "
              "income figures or the compensation, or you prefer one of the alternatives. HR "
              "resolves appeals: they may uphold the request, amend its terms or cancel it. You "
              "are not asked to sign while an appeal is open.",
    },
    "rights": {
        "zh-CN": "本报告中的价值与收入数字由系统自动评估得出。您有权要求公司说明评估方法，并"
                 "要求人工复核（《个人信息保护法》第二十四条）。",
        "en": "The value and income figures in this report come from an automated assessment. "
              "You have the right to an explanation of how it was made and to a human review "
              "of it (PIPL, Article 24).",
    },
    # --- 7. policy --------------------------------------------------------------------------------
    "sec_policy": {"zh-CN": "7. 适用的政策", "en": "7. The policy that applies"},
    "policy_text": {
        "zh-CN": "本申请适用政策“{name}”第 {version} 版（编号 {id}，发布于 {published}），"
                 "在本申请的整个流程中保持不变。全文可在 Baton 中查阅：GET {path}。",
        "en": "This request falls under policy \u201c{name}\u201d, version {version} (id {id}, "
              "published {published}), and keeps that version for its whole life. Read it in "
              "Baton: GET {path}.",
    },
    "not_published": {"zh-CN": "未发布", "en": "not published"},
    # --- appendix -----------------------------------------------------------------------------
    "sec_record": {"zh-CN": "附：评估记录原文", "en": "Appendix: the assessment as recorded"},
    "record_text": {
        "zh-CN": "以下为系统存档的评估说明原文（英文），供复核时对照。",
        "en": "The explanation stored with the assessment, verbatim, for review.",
    },
    # === the agreement (documents/agreement.py) ==============================================
    "agr_title": {"zh-CN": "客户调整协议", "en": "Customer reassignment agreement"},
    "agr_ref": {
        "zh-CN": "调整申请 #{id}，提交于 {at}",
        "en": "Reassignment request #{id}, submitted {at}",
    },
    "agr_page_footer": {
        "zh-CN": "调整申请 #{id} · 客户调整协议",
        "en": "Request #{id} · reassignment agreement",
    },
    "agr_parties": {"zh-CN": "协议各方", "en": "The parties"},
    "agr_company": {"zh-CN": "甲方（公司）", "en": "The company"},
    "agr_salesperson": {"zh-CN": "乙方（移交客户的销售）",
                        "en": "The salesperson (who hands over the customers)"},
    "agr_receiver": {"zh-CN": "接收销售（知悉，不签署）",
                     "en": "The receiving salesperson (informed; does not sign)"},
    "agr_person": {"zh-CN": "{name}（工号 {no}）", "en": "{name} (employee no. {no})"},
    "agr_preamble": {
        "zh-CN": "甲乙双方经协商，就下列客户负责关系的调整达成如下协议。本协议经乙方签字后生效；"
                 "未经乙方签字，客户归属不变。",
        "en": "The company and the salesperson agree as follows on reassigning the customers "
              "below. The agreement binds once the salesperson signs it; without that "
              "signature, the customers stay with the salesperson.",
    },
    "agr_art_customers": {"zh-CN": "第一条 调整的客户", "en": "Article 1. The customers that move"},
    "agr_customers_text": {
        "zh-CN": "乙方同意将以下 {count} 个客户的负责关系转给{receiver}：",
        "en": "The salesperson agrees that the following {count} customer(s) move to "
              "{receiver}:",
    },
    "agr_reason": {"zh-CN": "调整原因：{reason}。", "en": "Reason: {reason}."},
    "agr_art_effective": {"zh-CN": "第二条 生效日期", "en": "Article 2. Effective date"},
    "agr_effective_text": {
        "zh-CN": "调整于沟通期结束时生效，目前为 {at}；如有申诉，沟通期按申诉处理所用的时间顺延。"
                 "乙方在沟通期结束后签字的，于签字时生效。",
        "en": "The reassignment takes effect when the communication window ends, currently "
              "{at} (an appeal extends the window by the time it is under review), or when "
              "the salesperson signs, if that is later.",
    },
    "agr_effective_open": {
        "zh-CN": "调整于沟通期结束时生效；乙方在沟通期结束后签字的，于签字时生效。",
        "en": "The reassignment takes effect when the communication window ends, or when the "
              "salesperson signs, if that is later.",
    },
    "agr_effective_known": {
        "zh-CN": "调整已于 {at} 生效。",
        "en": "The reassignment took effect on {at}.",
    },
    "agr_sign_by": {
        "zh-CN": "乙方应于 {at} 前签字或拒绝；届时未签字的，调整不生效。",
        "en": "The salesperson signs or declines by {at}; without a signature by then, the "
              "reassignment does not take effect.",
    },
    "agr_art_protection": {"zh-CN": "第三条 保护期与提成分配",
                           "en": "Article 3. Protection period and share"},
    "agr_protection_text": {
        "zh-CN": "自生效之日起 {period} 为保护期。保护期内，上述客户的订单由乙方按其本人提成比例的 "
                 "{share} 获得提成，其余归接收销售；保护期结束后，提成全部归接收销售。",
        "en": "For {period} from the effective date the salesperson is in protection: on these "
              "customers' orders they earn {share} of the commission at their own rate, and "
              "the receiving salesperson earns the rest. After protection, all of it goes to "
              "the receiving salesperson.",
    },
    "agr_protection_none": {
        "zh-CN": "本次调整不设保护期：自生效之日起，上述客户订单的提成归接收销售。",
        "en": "There is no protection period: from the effective date, commission on these "
              "customers' orders goes to the receiving salesperson.",
    },
    "agr_before_effective": {
        "zh-CN": "生效前已下的订单仍按原归属计提成；退款按原订单的分配冲回。",
        "en": "Orders booked before the effective date keep their attribution, and a refund "
              "reverses the split of its original order.",
    },
    "agr_art_compensation": {"zh-CN": "第四条 补偿", "en": "Article 4. Compensation"},
    "agr_compensation_text": {
        "zh-CN": "甲方向乙方支付一次性补偿 {lump}。",
        "en": "The company pays the salesperson a one-off compensation of {lump}.",
    },
    "agr_compensation_none": {
        "zh-CN": "本协议不含一次性补偿，补偿体现在第三条的保护期与分成中。",
        "en": "There is no one-off payment; the compensation lies in the protection period "
              "and share of Article 3.",
    },
    "agr_option": {
        "zh-CN": "所选补偿方案：{kind}（政策公式计算的方案之一{mark}）。",
        "en": "Compensation option: {kind} (one of the options the policy formula computes"
              "{mark}).",
    },
    "agr_option_suggested": {"zh-CN": "，即建议方案", "en": "; the suggested one"},
    "agr_option_custom": {
        "zh-CN": "所选补偿方案：单独约定的条款（不是政策公式计算的方案之一）。",
        "en": "Compensation option: individually agreed terms (not one of the options the "
              "policy formula computes).",
    },
    "agr_art_policy": {"zh-CN": "第五条 适用的政策", "en": "Article 5. The policy that applies"},
    "agr_policy_text": {
        "zh-CN": "本协议依据政策“{name}”第 {version} 版（编号 {id}，发布于 {published}）订立。",
        "en": "This agreement is made under policy \u201c{name}\u201d, version {version} "
              "(id {id}, published {published}).",
    },
    "agr_art_report": {"zh-CN": "第六条 个人分析报告",
                       "en": "Article 6. The personal analysis report"},
    "agr_report_text": {
        "zh-CN": "乙方已收到个人分析报告第 {version} 版，报告说明了本次调整对乙方收入的影响和可选的"
                 "补偿方案。",
        "en": "The salesperson has received version {version} of the personal analysis report, "
              "which explains what the reassignment means for their income and the "
              "compensation options.",
    },
    "agr_report_link": {"zh-CN": "报告地址", "en": "Report"},
    "agr_report_hash": {"zh-CN": "报告 SHA-256", "en": "Report SHA-256"},
    "agr_art_consent": {"zh-CN": "第七条 自愿签署与电子签名",
                        "en": "Article 7. Consent and electronic signature"},
    "agr_consent_text": {
        "zh-CN": "乙方自愿签署本协议。在沟通期内乙方可以申诉，也可以拒绝签字；拒绝或到期未签字的，"
                 "一切维持原状。",
        "en": "The salesperson signs of their own free will. During the communication window "
              "they may appeal, and they may decline to sign; if they decline or do not sign in "
              "time, everything stays as it is.",
    },
    "agr_esign_text": {
        "zh-CN": "本协议依据《中华人民共和国电子签名法》以电子方式签署：乙方签字前重新验证身份，"
                 "签字记录本文件的 SHA-256。签字后，甲方附加签署证明页，并以甲方证书加盖电子印章"
                 "（PAdES），此后对文件或签名的任何改动均可被发现。",
        "en": "The agreement is signed electronically under the PRC Electronic Signature Law: "
              "the salesperson re-authenticates before signing, and the signature records this "
              "file's SHA-256. After the signature the company appends an evidence page and "
              "seals the file with its certificate (PAdES), so that any later change to the "
              "document or the signature can be detected.",
    },
    "agr_sign_salesperson": {"zh-CN": "乙方签字", "en": "The salesperson's signature"},
    "agr_sign_company": {"zh-CN": "甲方电子印章", "en": "The company's electronic seal"},
    "agr_sign_note": {"zh-CN": "以电子方式签署，见签署证明页",
                      "en": "signed electronically: see the evidence page"},
    # --- the evidence page appended when the agreement is sealed (documents/seal.py) ---------
    "ev_title": {"zh-CN": "签署证明", "en": "Signature evidence"},
    "ev_intro": {
        "zh-CN": "本页由 Baton 在乙方签字后附加，记录签字的时间、方式与证据，并与协议一起以甲方证书"
                 "加盖电子印章。协议原文即本文件的前 {size} 字节，未作任何改动。",
        "en": "Baton appended this page after the salesperson signed. It records when and how "
              "the agreement was signed, and the company's certificate seals it together with "
              "the agreement. The agreement itself, the first {size} bytes of this file, is "
              "unchanged.",
    },
    "ev_request": {"zh-CN": "调整申请", "en": "Reassignment request"},
    "ev_agreement_version": {"zh-CN": "协议版本", "en": "Agreement version"},
    "ev_agreement_sha": {"zh-CN": "协议 SHA-256", "en": "Agreement SHA-256"},
    "ev_signed_sha": {"zh-CN": "签字所指文件的 SHA-256", "en": "SHA-256 named by the signature"},
    "ev_hash_mismatch": {
        "zh-CN": "注意：签字所指的 SHA-256 与本协议不一致。",
        "en": "Warning: the signature names a different SHA-256 than this agreement's.",
    },
    "ev_signer": {"zh-CN": "签字人", "en": "Signer"},
    "ev_typed_name": {"zh-CN": "签字人输入的姓名（同意声明）",
                      "en": "Typed name (statement of consent)"},
    "ev_signed_at": {"zh-CN": "签字时间", "en": "Signed at"},
    "ev_method": {"zh-CN": "身份验证方式", "en": "Re-authentication"},
    "ev_method_passkey": {"zh-CN": "通行密钥（WebAuthn）", "en": "Passkey (WebAuthn)"},
    "ev_method_otp": {"zh-CN": "一次性验证码", "en": "One-time code"},
    "ev_method_session": {"zh-CN": "登录会话（未重新验证）",
                          "en": "Logged-in session (no re-authentication)"},
    "ev_credential": {"zh-CN": "凭据编号", "en": "Credential id"},
    "ev_ip": {"zh-CN": "IP 地址", "en": "IP address"},
    "ev_user_agent": {"zh-CN": "浏览器（User-Agent）", "en": "Browser (user agent)"},
    "ev_seal": {"zh-CN": "电子印章证书", "en": "Sealing certificate"},
    "ev_fingerprint": {"zh-CN": "证书 SHA-256 指纹", "en": "Certificate SHA-256 fingerprint"},
    "ev_dev_certificate": {
        "zh-CN": "开发用自签名证书：仅供测试，不具法律效力。",
        "en": "DEVELOPMENT self-signed certificate: for testing only, of no legal effect.",
    },
    "ev_verify": {
        "zh-CN": "验证：GET {path}，或 python cli.py verify-agreement 文件名。",
        "en": "To verify: GET {path}, or python cli.py verify-agreement FILE.",
    },
    "ev_none": {"zh-CN": "（无）", "en": "(none)"},
}


def translate(language: str, key: str, **values: object) -> str:
    """The message `key` in `language`, with its placeholders filled."""
    text = MESSAGES[key][language]
    return text.format(**values) if values else text
