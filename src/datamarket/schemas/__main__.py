"""``python -m datamarket.schemas``: regenerate ``result.schema.json`` from the scenario kinds' models."""

from datamarket.schemas import write_result_schema

if __name__ == "__main__":
    print(write_result_schema())
