"""Pure domain logic: state folded from a customer's stream, and the decisions over it."""
