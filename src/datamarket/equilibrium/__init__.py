"""Best responses, Nash and generalized Nash solvers, price of anarchy."""
