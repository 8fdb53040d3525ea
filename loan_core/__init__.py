"""What the three loan cores share: the loan engine and the LoanCoreService server."""
