from django.apps import AppConfig


class CatalogConfig(AppConfig):
    name = "catalog"
    verbose_name = "Catalogue"

    def ready(self) -> None:
        from catalog import signals
        from catalog.selectors import catalogue_entries
        from changes.services import catalogue_source_register

        signals.connect()
        # What a resync sends a webhook: changes.services.catalogue_record.
        catalogue_source_register(catalogue_entries)
