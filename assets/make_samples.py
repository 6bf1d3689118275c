"""Write the built-in sample datasets of ``assets/samples/`` from templates (deterministic: same output every run).

    python assets/make_samples.py

- ``support_faq_en.csv``   English customer-support FAQ (question, answer) for the fictional shop "Nimbus Home"
- ``support_faq_zh.jsonl`` 简体中文 customer-support FAQ as OpenAI ``messages`` lines (shop 「云栖家居」)
- ``intent_routing.csv``   intent routing (text, label): which team a customer message goes to
- ``support_preference_en.jsonl`` preference pairs (prompt, chosen, rejected) for "Nimbus Home": a polite,
  accurate answer is chosen over a curt one or a wrong one (half each, so length alone does not tell them apart)

Every sentence below is written for this project; the products and the shop are invented.
Each intent has several phrasings of the question, which are combined with products and details,
so the model sees varied wording for one consistent answer style.
"""
from __future__ import annotations

import csv
import json
import random
from pathlib import Path

OUT = Path(__file__).resolve().parent / "samples"
SEED = 7

# ------------------------------------------------------------------ English FAQ
EN_PRODUCTS = ["Aurora desk lamp", "Breeze air purifier", "Cirrus robot vacuum", "Drift smart kettle",
               "Ember space heater", "Fjord water filter", "Glow night light", "Harbor coffee grinder",
               "Isla humidifier", "Juniper blender"]
EN_ORDER_IDS = ["NH-10482", "NH-20931", "NH-33107", "NH-45820", "NH-51763", "NH-68244", "NH-72019", "NH-89356"]

EN_INTENTS = {
    "track_order": (
        ["Where is my order {order}?", "How can I track the {product} I ordered?",
         "My order {order} hasn't arrived yet, where is it?", "Can you tell me the delivery status of my {product}?",
         "When will my {product} be delivered?", "I ordered a {product} last week. Any update on shipping?"],
        "You can follow your parcel under Account > Orders, where the tracking link for {ref} is shown as soon as "
        "it leaves our warehouse. Standard delivery takes 3-5 working days; if it has been longer, reply with your "
        "order number and we will check with the carrier."),
    "return_item": (
        ["How do I return my {product}?", "I want to send back the {product}, what should I do?",
         "Can I return a {product} I bought {days} days ago?", "What is your return policy for the {product}?",
         "The {product} is not what I expected. Can I return it?"],
        "You can return the {product} within 30 days of delivery. Start the return under Account > Orders > "
        "Return item, print the prepaid label and drop the parcel at any post office. The refund is issued "
        "once the item reaches our warehouse."),
    "refund_status": (
        ["When will I get my refund for order {order}?", "I returned my {product} but have not been refunded.",
         "How long do refunds take?", "My refund for the {product} is still missing.",
         "Has my refund for {order} been processed?"],
        "Refunds are sent to the original payment method within 5 working days after we receive the return. "
        "Your bank may need another 2-3 days to show it. If {ref} was returned more than 10 days ago, "
        "tell us and we will trace the payment."),
    "cancel_order": (
        ["Can I cancel my order {order}?", "I changed my mind about the {product}, please cancel it.",
         "How do I cancel an order I just placed?", "Is it too late to cancel my {product} order?"],
        "Orders can be cancelled free of charge until they are packed, usually within 2 hours of ordering. "
        "Open Account > Orders and choose Cancel order for {ref}. If the button is grey, the parcel has already "
        "left and you can return it instead once it arrives."),
    "warranty": (
        ["Is the {product} covered by a warranty?", "My {product} stopped working, is it under warranty?",
         "How long is the warranty on the {product}?", "What does the warranty of the {product} cover?"],
        "Every {product} comes with a 2-year warranty against manufacturing defects. Keep your order number and "
        "describe the fault in a warranty request under Support > Warranty; we repair or replace the device "
        "free of charge, including shipping."),
    "broken_on_arrival": (
        ["My {product} arrived broken.", "The {product} I received is damaged, what now?",
         "The box was crushed and the {product} does not turn on.", "I got a cracked {product} in order {order}."],
        "We are sorry your {product} arrived damaged. Please send a photo of the item and the box to "
        "support@nimbushome.example within 7 days of delivery; we will ship a replacement right away and you do "
        "not need to return the broken one."),
    "reset_password": (
        ["I forgot my password.", "How do I reset my password?", "I can't log in to my account.",
         "The password reset email never arrived.", "How can I change my account password?"],
        "Choose 'Forgot password' on the sign-in page and enter your email address; the reset link arrives within "
        "a few minutes and is valid for 1 hour. Check your spam folder if you cannot find it. For security, our "
        "team can never see or send your password."),
    "change_address": (
        ["Can I change the delivery address for order {order}?", "I entered the wrong address for my {product}.",
         "How do I update my shipping address?", "I am moving, can you send the {product} somewhere else?"],
        "You can edit the delivery address under Account > Orders until {ref} is packed. After that, the "
        "carrier's tracking page lets you redirect the parcel to a pick-up point near you."),
    "payment_methods": (
        ["Which payment methods do you accept?", "Can I pay for the {product} in installments?",
         "Do you take PayPal?", "Can I pay by bank transfer?", "Is it possible to pay with a gift card?"],
        "We accept Visa, Mastercard, PayPal, bank transfer and Nimbus gift cards. Orders over 200 EUR can be "
        "paid in 3 interest-free installments, chosen at checkout."),
    "shipping_cost": (
        ["How much is shipping?", "Do you offer free delivery?", "What does it cost to ship a {product}?",
         "Do you ship abroad?", "How fast is express delivery?"],
        "Shipping is free for orders over 49 EUR and 4.90 EUR below that. Express delivery (next working day when "
        "ordered before 2 pm) costs 9.90 EUR. We ship to all EU countries, the UK and Switzerland."),
    "product_usage": (
        ["How do I set up the {product}?", "The {product} manual is confusing, how do I start it?",
         "How do I clean the {product}?", "How do I connect the {product} to the app?"],
        "The quick-start guide for the {product} is in the Nimbus app under Devices > Add device: it walks you "
        "through setup in about five minutes. Cleaning and care instructions are in the same section, and our "
        "video guides are on the product page."),
    "discount_code": (
        ["My discount code doesn't work.", "Where do I enter a promo code?", "Can I use two discount codes?",
         "The voucher was not applied to my {product}.", "Do you have any discounts for students?"],
        "Enter the code in the 'Discount code' field on the checkout page and press Apply. Only one code can be "
        "used per order, and codes do not apply to items already on sale. Students get 10% off after verifying "
        "their status in their account."),
    "contact_hours": (
        ["When is your customer service open?", "How can I reach a human?", "What is your phone number?",
         "Can I talk to someone about my {product}?"],
        "Our support team is available Monday to Friday, 8 am to 8 pm, and Saturday, 9 am to 4 pm, by chat, by "
        "phone at +49 30 1234 5678 or by email at support@nimbushome.example. We usually answer emails within "
        "one working day."),
    "delete_account": (
        ["How do I delete my account?", "Please remove all my personal data.",
         "I want to close my Nimbus account.", "Can you erase my data?"],
        "You can delete your account under Account > Privacy > Delete account. We then erase your personal data "
        "within 30 days, except invoices we must keep by law. Open orders must be completed or cancelled first."),
}
EN_OPENERS = ["", "", "", "Hi, ", "Hello! ", "Hey there, ", "Quick question: ", "Good morning. "]
EN_CLOSERS = ["", "", "", " Thanks!", " Thank you.", " Thanks in advance.", " Please help."]


def _lower_first(text: str) -> str:
    return text[0].lower() + text[1:] if text and not text.startswith("I ") else text


def make_en(rng: random.Random, per_intent: int = 22) -> list[dict]:
    """English (question, answer) pairs: every intent × several phrasings × products."""
    rows, seen = [], set()
    for intent, (questions, answer) in EN_INTENTS.items():
        tries = 0
        while sum(r["intent"] == intent for r in rows) < per_intent and tries < 500:
            tries += 1
            product, order = rng.choice(EN_PRODUCTS), rng.choice(EN_ORDER_IDS)
            q = rng.choice(questions).format(product=product, order=order, days=rng.choice([10, 20, 25, 40]))
            opener = rng.choice(EN_OPENERS)
            q = opener + (_lower_first(q) if opener.endswith(", ") or opener.endswith(": ") else q)
            q += rng.choice(EN_CLOSERS)
            if q in seen:
                continue
            seen.add(q)
            ref = f"order {order}" if "{order}" in " ".join(questions) and order in q else "your order"
            rows.append({"question": q, "answer": answer.format(product=product, ref=ref), "intent": intent})
    rng.shuffle(rows)
    return rows


# ------------------------------------------------------------------ Chinese FAQ (简体中文)
ZH_PRODUCTS = ["极光台灯", "清风空气净化器", "云朵扫地机器人", "暖阳电暖器", "澄泉净水器", "晨光咖啡机",
               "小溪加湿器", "星夜小夜灯", "疾风破壁机", "静眠香薰机"]
ZH_ORDER_IDS = ["YQ20240117", "YQ20240233", "YQ20240358", "YQ20240412", "YQ20240586", "YQ20240691"]

ZH_INTENTS = {
    "查询物流": (
        ["我的订单{order}到哪里了？", "{product}什么时候能送到？", "怎么查看{product}的物流信息？",
         "我买的{product}一直没到货，能帮我查一下吗？", "订单{order}发货了吗？"],
        "您可以在「我的-订单」中查看物流进度，包裹离开仓库后即可看到快递单号。普通快递一般3-5天送达，"
        "如超过7天仍未收到，请把订单号发给我们，我们会联系快递公司为您核实。"),
    "退货退款": (
        ["{product}可以退货吗？", "我想退掉刚买的{product}，怎么操作？", "收到的{product}不喜欢，能退吗？",
         "{product}退货运费谁承担？", "退货以后多久能收到退款？"],
        "{product}支持签收后7天无理由退货。请在「我的-订单」中点击「申请退货」，按提示寄回商品即可；"
        "质量问题的退货运费由我们承担。仓库收到退货后1-3个工作日内原路退款。"),
    "取消订单": (
        ["订单{order}还能取消吗？", "我下错单了，怎么取消？", "不想要{product}了，可以取消订单吗？",
         "刚付款的订单怎么取消？"],
        "订单在仓库打包前都可以免费取消，一般是下单后2小时内。请在「我的-订单」中点击「取消订单」；"
        "如果按钮已变灰，说明包裹已经发出，您可以在收货后申请退货。"),
    "保修售后": (
        ["{product}保修多久？", "{product}坏了，还在保修期内吗？", "{product}的保修包括哪些内容？",
         "我的{product}用了半年就不工作了，怎么办？"],
        "{product}整机保修2年，保修期内非人为损坏免费维修或更换，往返运费由我们承担。"
        "请在「服务-售后申请」中填写订单号并描述故障，我们会在1个工作日内联系您。"),
    "商品破损": (
        ["收到的{product}是坏的。", "{product}外包装破了，机器也开不了机。", "订单{order}里的{product}有裂痕。",
         "快递送来的{product}摔坏了怎么办？"],
        "非常抱歉{product}在运输中受损。请在签收后7天内把商品和外包装的照片发送给在线客服，"
        "我们会立即为您补发新品，破损的商品无需寄回。"),
    "修改地址": (
        ["订单{order}的收货地址能改吗？", "我填错地址了，{product}还没发货。", "怎么修改收货地址？",
         "我搬家了，能把{product}寄到新地址吗？"],
        "订单打包前，您可以在「我的-订单」中直接修改收货地址。如果包裹已经发出，"
        "可以通过快递公司的官方渠道改派，或选择就近的快递驿站自提。"),
    "支付方式": (
        ["你们支持哪些付款方式？", "可以用花呗分期买{product}吗？", "能用微信支付吗？", "支持银行卡付款吗？",
         "可以开发票吗？"],
        "我们支持微信支付、支付宝、银行卡和云栖礼品卡。单笔满500元可选择3期免息分期。"
        "电子发票可以在订单完成后于「我的-订单-申请发票」中开具。"),
    "运费说明": (
        ["运费怎么算？", "买{product}包邮吗？", "偏远地区能发货吗？", "有没有加急配送？"],
        "订单满99元包邮，不满99元收取运费8元。加急配送（当天16点前下单次日送达）另收15元。"
        "新疆、西藏等偏远地区可以发货，时效会多2-3天。"),
    "使用指导": (
        ["{product}怎么使用？", "{product}第一次用要注意什么？", "{product}怎么清洗？",
         "{product}怎么连接手机App？"],
        "{product}的图文和视频教程都在「云栖家居」App的「设备-添加设备」里，按步骤约5分钟即可完成设置。"
        "清洁和保养方法也在同一页面，如仍有疑问可随时联系在线客服。"),
    "优惠券": (
        ["优惠券用不了怎么办？", "在哪里输入优惠码？", "两张优惠券可以一起用吗？",
         "{product}为什么没有减价？"],
        "请在结算页面的「优惠券」一栏选择或输入优惠码。每个订单限用一张优惠券，特价商品不参与用券。"
        "如果优惠券显示可用但没有抵扣，请截图发给在线客服，我们会帮您处理。"),
    "联系客服": (
        ["客服几点上班？", "怎么联系人工客服？", "你们的客服电话是多少？", "{product}的问题找谁咨询？"],
        "在线客服每天9:00-21:00为您服务，也可以拨打客服热线400-123-4567（工作日9:00-18:00）。"
        "非工作时间留言，我们会在下一个工作日优先回复。"),
    "注销账号": (
        ["怎么注销账号？", "请删除我的个人信息。", "我不想用了，能把账号关掉吗？", "注销账号后订单还能查吗？"],
        "您可以在「我的-设置-账号与安全-注销账号」中申请注销，我们会在15个工作日内删除您的个人信息，"
        "法律要求保留的发票记录除外。注销前请先确认没有未完成的订单。"),
}
ZH_OPENERS = ["", "", "", "你好，", "您好，", "请问", "麻烦问一下，", "客服你好，"]
ZH_CLOSERS = ["", "", "", "谢谢！", "谢谢。", "急，在线等。", "麻烦尽快回复。"]
ZH_SYSTEM = "你是「云栖家居」的在线客服助手，回答要礼貌、简洁、准确。"


def make_zh(rng: random.Random, per_intent: int = 22) -> list[dict]:
    """简体中文 conversations (system, user, assistant) as OpenAI messages."""
    rows, seen = [], set()
    for intent, (questions, answer) in ZH_INTENTS.items():
        tries, count = 0, 0
        while count < per_intent and tries < 500:
            tries += 1
            product, order = rng.choice(ZH_PRODUCTS), rng.choice(ZH_ORDER_IDS)
            q = rng.choice(ZH_OPENERS) + rng.choice(questions).format(product=product, order=order) \
                + rng.choice(ZH_CLOSERS)
            if q in seen:
                continue
            seen.add(q)
            count += 1
            rows.append({"messages": [{"role": "system", "content": ZH_SYSTEM},
                                      {"role": "user", "content": q},
                                      {"role": "assistant", "content": answer.format(product=product)}],
                         "intent": intent})
    rng.shuffle(rows)
    return rows


# ------------------------------------------------------------------ intent routing (text, label)
ROUTES = {
    "billing": ["I was charged twice for {thing}", "why is there an extra fee on my invoice",
                "my card was declined when paying for {thing}", "I need a copy of the invoice for {thing}",
                "the price I paid for {thing} is wrong", "can I change the payment method on my subscription",
                "please explain this charge on my statement", "I want to pay my bill in installments"],
    "shipping": ["where is my parcel with {thing}", "the courier never delivered {thing}",
                 "tracking for {thing} has not updated in days", "can I pick up {thing} in store instead",
                 "how long does delivery to Spain take", "the delivery address on my order is wrong",
                 "my package says delivered but it is not here", "can you ship {thing} express"],
    "returns": ["I want to return {thing}", "how do I get a refund for {thing}",
                "{thing} is the wrong size, can I exchange it", "I sent {thing} back two weeks ago, where is my money",
                "do I have to pay for the return label", "can I return {thing} without the box",
                "I received the wrong item instead of {thing}", "how many days do I have to return {thing}"],
    "technical": ["{thing} will not turn on", "the app keeps crashing when I connect {thing}",
                  "{thing} makes a loud noise", "the wifi setup of {thing} fails",
                  "firmware update for {thing} got stuck", "{thing} shows error E4",
                  "the battery of {thing} drains overnight", "{thing} disconnects from bluetooth"],
    "account": ["I cannot log in to my account", "how do I change my email address",
                "I never received the verification code", "please delete my account",
                "someone else may have accessed my account", "how do I turn on two-factor login",
                "I want to merge my two accounts", "how do I update my phone number"],
    "sales": ["do you have {thing} in black", "is there a discount if I buy three {thing}",
              "when will {thing} be back in stock", "what is the difference between the two models of {thing}",
              "do you offer business pricing for {thing}", "is {thing} compatible with my old charger",
              "can I pre-order the new {thing}", "which {thing} would you recommend for a small flat"],
    "complaint": ["I am very unhappy with how my case about {thing} was handled",
                  "your support agent was rude to me", "this is the third time {thing} broke, unacceptable",
                  "I want to speak to a manager about {thing}", "nobody answered my emails for a week",
                  "I want to file a formal complaint", "the quality of {thing} is terrible for the price",
                  "I was promised a callback that never came"],
    "other": ["do you have a store in Berlin", "are you hiring", "what are your opening hours on holidays",
              "can I visit your warehouse", "do you sponsor local events", "what is your company address",
              "is your packaging recyclable", "how can I become a reseller"],
}
THINGS = ["the air purifier", "my robot vacuum", "the kettle", "the blender", "the desk lamp", "the heater",
          "the humidifier", "the water filter", "my order", "the coffee grinder"]
TEXT_STYLES = [lambda s: s, lambda s: s.capitalize() + ".", lambda s: s.capitalize() + "?",
               lambda s: "hi, " + s, lambda s: s + " please", lambda s: s.upper() if len(s) < 40 else s,
               lambda s: "Hello, " + s + ", thanks"]


def make_routing(rng: random.Random, per_label: int = 40) -> list[dict]:
    """(text, label) rows for eight support routes; 'other' is deliberately smaller (a realistic imbalance)."""
    rows, seen = [], set()
    for label, templates in ROUTES.items():
        want = per_label // 2 if label == "other" else per_label
        count, tries = 0, 0
        while count < want and tries < 1000:
            tries += 1
            text = rng.choice(TEXT_STYLES)(rng.choice(templates).format(thing=rng.choice(THINGS)))
            if text in seen:
                continue
            seen.add(text)
            count += 1
            rows.append({"text": text, "label": label})
    rng.shuffle(rows)
    return rows


# ------------------------------------------------------------------ English preference pairs
# topic -> (questions, the good answer, a curt answer, a wrong answer that sounds confident)
PREF_TOPICS = {
    "return_window": (
        ["How long do I have to return the {product}?", "Can I still send back a {product} I got three weeks ago?",
         "What is the deadline for returning the {product}?", "Is there a time limit on returns for the {product}?"],
        "You can return the {product} within 30 days of delivery. Start the return under Account > Orders > Return "
        "item and we will email you a prepaid label.",
        "30 days.",
        "Returns of the {product} are only possible within 7 days of ordering, not of delivery, and you pay the "
        "shipping and a handling fee yourself, so it is almost certainly too late now and we cannot make an "
        "exception."),
    "refund_time": (
        ["When will my refund for the {product} arrive?", "How long does a refund take for a returned {product}?",
         "I sent back the {product}. When do I see the money?", "How fast is the refund for the {product}?"],
        "Refunds go to your original payment method within 5 working days after the return reaches our warehouse; "
        "your bank may take 2-3 more days to show it.",
        "Wait for it.",
        "Refunds for the {product} are never paid back to your card. You receive store credit instead, and that "
        "credit is only issued at the end of each quarter, after our finance team has reviewed every return by hand."),
    "warranty": (
        ["Is the {product} under warranty?", "How long is the warranty on the {product}?",
         "My {product} broke after a year. Am I covered?", "What does the warranty of the {product} include?"],
        "Every {product} has a 2-year warranty against manufacturing defects. Send us your order number and a short "
        "description of the fault, and we will arrange a repair or a replacement.",
        "Read the manual.",
        "The {product} only has a 90-day warranty, which ended long ago, so any repair after a year is at your own "
        "cost. You could try a local repair shop, but opening the {product} yourself is fine too and will not "
        "matter now."),
    "track_order": (
        ["Where is my {product}?", "How can I track the {product} I ordered?",
         "My {product} has not arrived yet. What should I do?", "Can I see the delivery status of my {product}?"],
        "You can follow the parcel under Account > Orders, where the tracking link appears as soon as it leaves our "
        "warehouse. Standard delivery takes 3-5 working days; if it has been longer, reply with your order number "
        "and we will check with the carrier.",
        "It is on the way.",
        "We do not offer any tracking for the {product}, and the carrier will not tell you anything either, so "
        "there is nothing to check. Parcels can take four to six weeks, so please wait and do not contact us again "
        "before then, because we cannot look it up."),
    "cancel_order": (
        ["Can I cancel my order for the {product}?", "I changed my mind about the {product}. Can you cancel it?",
         "How do I cancel the {product} I ordered an hour ago?", "Is it too late to cancel the {product}?"],
        "Orders can be cancelled free of charge until they are packed, usually within 2 hours. Open Account > Orders "
        "and choose Cancel order; if the button is grey, the parcel has left and you can return it once it arrives.",
        "No.",
        "Orders for the {product} can never be cancelled once they are placed, not even a minute later. You have to "
        "wait for the delivery, then send it back at your own cost and pay a restocking fee of 25 percent of the "
        "price before any refund is considered."),
}
PREF_PRODUCTS = ["Aurora desk lamp", "Breeze air purifier", "Cirrus robot vacuum", "Drift smart kettle",
                 "Ember space heater", "Fjord water filter", "Glow night light", "Harbor coffee grinder"]


def make_preference(rng: random.Random, per_topic: int = 8) -> list[dict]:
    """Pairs: the good answer is chosen; the rejected one is curt (even rows) or wrong (odd rows)."""
    rows = []
    for questions, good, curt, wrong in PREF_TOPICS.values():
        start = rng.randrange(len(PREF_PRODUCTS))
        for i in range(per_topic):  # a different product each time: no prompt repeats
            product = PREF_PRODUCTS[(start + i) % len(PREF_PRODUCTS)]
            question = questions[i % len(questions)].format(product=product)
            rejected = curt if i % 2 == 0 else wrong
            rows.append({"prompt": question, "chosen": good.format(product=product),
                         "rejected": rejected.format(product=product)})
    rng.shuffle(rows)
    return rows


def main() -> None:
    """Write the sample files."""
    OUT.mkdir(parents=True, exist_ok=True)
    rng = random.Random(SEED)
    en = make_en(rng)
    with open(OUT / "support_faq_en.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["question", "answer"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(en)
    zh = make_zh(rng)
    with open(OUT / "support_faq_zh.jsonl", "w", encoding="utf-8") as fh:
        for row in zh:
            fh.write(json.dumps({"messages": row["messages"]}, ensure_ascii=False) + "\n")
    routing = make_routing(rng)
    with open(OUT / "intent_routing.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["text", "label"])
        writer.writeheader()
        writer.writerows(routing)
    pairs = make_preference(random.Random(SEED + 1))  # its own generator: the other samples stay byte-identical
    with open(OUT / "support_preference_en.jsonl", "w", encoding="utf-8") as fh:
        for row in pairs:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"support_faq_en.csv: {len(en)} rows, support_faq_zh.jsonl: {len(zh)} rows, "
          f"intent_routing.csv: {len(routing)} rows, support_preference_en.jsonl: {len(pairs)} pairs")


if __name__ == "__main__":
    main()
