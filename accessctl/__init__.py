"""Who may see what: policies, purposes of use, break-glass, SQL rewriting, masking, disclosure."""
