"""The fixed question table: 27 plain-language questions and the plan each must become.

One table for the rule parser's tests, the language-model planner's evaluation
(`storefleet inventory ask-eval`) and its slow test, so the two planners are always measured on the
same questions. The vocabulary is a small chain (two stores, five products, three categories); the
questions name things the way people do (store names, product names without sizes, "the airport store").

Example:
    >>> len(QUESTIONS), QUESTIONS[0][1].plan
    (27, 'restock_today')
"""

from __future__ import annotations

from datetime import date

from workloads.inventory.parser import Vocabulary
from workloads.inventory.plans import (
    BackroomOnly,
    DeliveriesDue,
    DemandForecast,
    LowStock,
    ReorderList,
    RestockToday,
    SalesHistory,
    ShelfGaps,
    StockLevel,
    StockoutRisk,
    StockValue,
    TopSellers,
    Window,
)

TODAY = date(2026, 3, 5)  #: a Thursday: "this weekend" and "tomorrow" differ

VOCAB = Vocabulary(
    stores={"S1": "Downtown", "S2": "Airport"},
    products={"MILK-1L": "Whole milk 1L", "OAT-1L": "Oat milk 1L", "CRISPS": "Salted crisps 150g",
              "COFFEE": "Ground coffee 227g", "EGGS": "Free-range eggs 12"},
    categories={"dairy", "snacks", "beverages"},
)
W = Window

QUESTIONS = [
    ("What do I need to restock today?", RestockToday()),
    ("What should I restock today in Downtown?", RestockToday(stores=["S1"])),
    ("Replenish list for S2", RestockToday(stores=["S2"])),
    ("Which stores will run out of whole milk this weekend?", StockoutRisk(skus=["MILK-1L"], window=W.THIS_WEEKEND)),
    ("Will S2 run out of oat milk in the next 48 hours?", StockoutRisk(stores=["S2"], skus=["OAT-1L"])),
    ("What is going to be out of stock tomorrow?", StockoutRisk(window=W.TOMORROW)),
    ("Any stockouts expected this week in the airport store?", StockoutRisk(stores=["S2"], window=W.NEXT_7_DAYS)),
    ("What will sell out this weekend?", StockoutRisk(window=W.THIS_WEEKEND)),
    ("Which dairy items are running low?", LowStock(category="dairy")),
    ("How many salted crisps do we have in Downtown?", StockLevel(stores=["S1"], skus=["CRISPS"])),
    ("How much ground coffee is left?", StockLevel(skus=["COFFEE"])),
    ("Do we have oat milk in the airport store?", StockLevel(stores=["S2"], skus=["OAT-1L"])),
    ("Which shelves are empty?", ShelfGaps()),
    ("Show me the gaps on the shelves in S1", ShelfGaps(stores=["S1"])),
    ("What is sitting in the backroom while the shelf is empty?", BackroomOnly()),
    ("What should we reorder?", ReorderList()),
    ("Make me the purchase order for snacks", ReorderList(category="snacks")),
    ("How many free-range eggs will we sell this weekend?", DemandForecast(skus=["EGGS"], window=W.THIS_WEEKEND)),
    ("What is the demand forecast for whole milk next week?", DemandForecast(skus=["MILK-1L"])),
    ("What are the top 5 best sellers last week?", TopSellers(limit=5)),
    ("Which beverages sold best in the last 30 days?", TopSellers(category="beverages", window=W.LAST_30_DAYS)),
    ("How many whole milk did we sell yesterday?", SalesHistory(skus=["MILK-1L"], window=W.YESTERDAY)),
    ("Sales of oat milk in S2 over the past week", SalesHistory(stores=["S2"], skus=["OAT-1L"])),
    ("When is the next delivery for ground coffee?", DeliveriesDue(skus=["COFFEE"])),
    ("Which deliveries arrive tomorrow at Downtown?", DeliveriesDue(stores=["S1"], window=W.TOMORROW)),
    ("What is our stock worth?", StockValue()),
    ("Value of dairy stock in S1", StockValue(stores=["S1"], category="dairy")),
]
