"""product-recommender's texts: the shop's catalogue and the surfaces (page slots) a
recommendation is requested from, with how each request reads. Pure data.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Product:
    pid: str
    name: str
    price: float
    category: str

    def line(self) -> str:
        return f"{self.pid} {self.name} — €{self.price:.2f}"


CATALOG = tuple(
    Product(pid, name, price, category)
    for category, items in {
        "running": [
            ("P-10011", "Trail running shoes Ridge 3", 129.00),
            ("P-10012", "Merino running socks (3-pack)", 24.90),
            ("P-10013", "Hydration vest 5 L", 79.00),
            ("P-10014", "Reflective running jacket", 89.00),
            ("P-10015", "Energy gels, salted caramel (12)", 21.50),
            ("P-10016", "GPS running watch Pace 2", 199.00),
        ],
        "hiking": [
            ("P-10021", "Waterproof hiking boots Alto GTX", 169.00),
            ("P-10022", "Trekking poles, carbon", 99.00),
            ("P-10023", "Daypack 28 L", 74.90),
            ("P-10024", "Gaiters, breathable", 34.90),
            ("P-10025", "Insulated water bottle 750 ml", 27.00),
            ("P-10026", "Headlamp 400 lm", 39.90),
        ],
        "coffee": [
            ("P-10031", "Burr coffee grinder", 119.00),
            ("P-10032", "Gooseneck pour-over kettle", 59.00),
            ("P-10033", "Ceramic pour-over dripper", 22.00),
            ("P-10034", "Paper filters size 02 (100)", 5.90),
            ("P-10035", "Ethiopia Guji beans 250 g", 14.50),
            ("P-10036", "Digital coffee scale", 32.00),
        ],
        "office": [
            ("P-10041", "Ergonomic office chair Flex", 349.00),
            ("P-10042", "Monitor arm, single", 89.00),
            ("P-10043", "Mechanical keyboard TKL", 119.00),
            ("P-10044", "Desk lamp with USB-C", 49.90),
            ("P-10045", "Laptop stand, aluminium", 39.00),
            ("P-10046", "Noise-cancelling headphones Q7", 249.00),
        ],
        "baby": [
            ("P-10051", "Baby stroller City Lite", 429.00),
            ("P-10052", "Diaper bag backpack", 59.00),
            ("P-10053", "Baby monitor with camera", 139.00),
            ("P-10054", "Muslin swaddles (4)", 29.90),
        ],
        "garden": [
            ("P-10061", "Cordless hedge trimmer", 149.00),
            ("P-10062", "Garden hose 25 m", 39.90),
            ("P-10063", "Bypass pruning shears", 24.00),
            ("P-10064", "Raised bed kit, larch", 189.00),
        ],
    }.items()
    for pid, name, price in items
)


SURFACES = {
    # surface: (intent, weight, how the request reads)
    "product_page": ("cross_sell", 45, "is viewing {anchor} on the product page"),
    "cart": ("cart_addon", 25, "has {anchor} in the cart and is about to check out"),
    "home": ("personalised_home", 20, "opened the home page; last viewed {anchor}"),
    "search": ("similar_items", 10, "searched for “{query}” and opened {anchor}"),
}
