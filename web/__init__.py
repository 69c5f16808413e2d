"""HTTP layer and browser pages: customer (mobile), agent console, supervisor, auditor."""
