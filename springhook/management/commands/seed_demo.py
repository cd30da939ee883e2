from django.core.management.base import BaseCommand
from django.db import transaction

from catalog.models import Institute, Training

DEMO_CATALOGUE = {
    "Northwind Academy": [
        ("NW-PY", "Python for data analysis", "35.00"),
        ("NW-SQL", "SQL from zero", "29.50"),
        ("NW-LEAD", "Leading small teams", "120.00"),
    ],
    "Harbour Institute": [
        ("HB-FIRST", "First aid at work", "80.00"),
        ("HB-EXCEL", "Spreadsheets that stay correct", None),
    ],
}


class Command(BaseCommand):
    help = "Load a small demo catalogue into an empty database (does nothing otherwise)."

    def handle(self, *args, **options) -> None:
        if Institute.objects.exists():
            self.stdout.write("The catalogue has data already; no demo data loaded.")
            return
        with transaction.atomic():
            for institute_name, trainings in DEMO_CATALOGUE.items():
                institute = Institute.objects.create(name=institute_name)
                for reference, name, price in trainings:
                    Training.objects.create(
                        institute=institute, reference=reference, name=name, price=price
                    )
        self.stdout.write(f"Loaded {len(DEMO_CATALOGUE)} demo institutes with their trainings.")
