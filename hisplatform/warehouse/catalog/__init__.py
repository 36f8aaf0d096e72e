"""Hard-coded reference data the demo-hospital generator draws from: people, places, labs, drugs, codes."""
