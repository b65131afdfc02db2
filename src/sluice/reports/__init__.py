"""Volume metrics before and after, the what-if analysis of a mailbox, and exports."""
