      *****************************************************************
      * GLPOST: records exchanged with the general ledger mainframe.
      * Text PIC X is EBCDIC code page 037, left-justified, space-filled.
      * PIC 9 is zoned decimal (unsigned), PIC S9 COMP-3 packed decimal
      * with the sign in the last nibble (C plus, D minus).
      * Amounts are in minor units (cents) of their currency.
      *
      * Online: one frame per posting = one POSTING-HEADER followed by
      * PH-ENTRY-COUNT POSTING-ENTRY records; the mainframe answers each
      * posting with one POSTING-REPLY frame.
      *****************************************************************
       01  POSTING-HEADER.
           05  PH-RECORD-TYPE          PIC X(4)  VALUE 'POST'.
           05  PH-POSTING-ID           PIC X(80).
           05  PH-BUSINESS-DATE        PIC 9(8).
           05  PH-PAYMENT-ID           PIC X(80).
           05  PH-CHANNEL              PIC 9(2).
           05  PH-LOAN-TYPE            PIC 9(2).
           05  PH-ENTRY-COUNT          PIC 9(3).
       01  POSTING-ENTRY.
           05  PE-RECORD-TYPE          PIC X(4)  VALUE 'ENTR'.
           05  PE-ENTRY-ID             PIC X(88).
           05  PE-ACCOUNT              PIC X(10).
           05  PE-SIDE                 PIC X(1).
               88  PE-DEBIT                      VALUE 'D'.
               88  PE-CREDIT                     VALUE 'C'.
           05  PE-CURRENCY             PIC X(3).
           05  PE-AMOUNT               PIC S9(15) COMP-3.
      * Return codes: 0000 posted, 0008 unbalanced movement,
      * 0012 unknown account, 0024 malformed record.
       01  POSTING-REPLY.
           05  PR-RECORD-TYPE          PIC X(4)  VALUE 'RPLY'.
           05  PR-POSTING-ID           PIC X(80).
           05  PR-RETURN-CODE          PIC 9(4).
           05  PR-REFERENCE            PIC X(16).
           05  PR-MESSAGE              PIC X(80).
      * Operator control of the emulator (from the operator identity
      * only): MODE is NORMAL, DOWN, SLOW, GARBAGE or TRUNCATE.
       01  CONTROL-REQUEST.
           05  CR-RECORD-TYPE          PIC X(4)  VALUE 'CTRL'.
           05  CR-MODE                 PIC X(8).
           05  CR-DELAY-MS             PIC 9(5).
       01  CONTROL-REPLY.
           05  CA-RECORD-TYPE          PIC X(4)  VALUE 'CTRA'.
           05  CA-MODE                 PIC X(8).
           05  CA-MESSAGE              PIC X(80).
      *****************************************************************
      * End-of-day batch file GLPOST.D<yyyymmdd>: fixed length records
      * of 200 bytes: one EOD-HEADER, the EOD-DETAIL records (one per
      * ledger entry posted that day), one EOD-TRAILER with the record
      * count and the control totals per currency. It travels as frames
      * of whole records; the mainframe answers with one EOD-REPLY.
      *****************************************************************
       01  EOD-HEADER.
           05  EH-RECORD-TYPE          PIC X(4)  VALUE 'EODH'.
           05  EH-BUSINESS-DATE        PIC 9(8).
           05  EH-FILE-NAME            PIC X(44).
           05  FILLER                  PIC X(144).
       01  EOD-DETAIL.
           05  ED-RECORD-TYPE          PIC X(4)  VALUE 'EODD'.
           05  ED-POSTING-ID           PIC X(80).
           05  ED-ENTRY-ID             PIC X(88).
           05  ED-ACCOUNT              PIC X(10).
           05  ED-SIDE                 PIC X(1).
           05  ED-CURRENCY             PIC X(3).
           05  ED-AMOUNT               PIC S9(15) COMP-3.
           05  ED-CHANNEL              PIC 9(2).
           05  ED-LOAN-TYPE            PIC 9(2).
           05  FILLER                  PIC X(2).
       01  EOD-TRAILER.
           05  ET-RECORD-TYPE          PIC X(4)  VALUE 'EODT'.
           05  ET-RECORD-COUNT         PIC 9(9).
           05  ET-TOTALS OCCURS 4 TIMES.
               10  ET-CURRENCY         PIC X(3).
               10  ET-DEBIT-TOTAL      PIC S9(17) COMP-3.
               10  ET-CREDIT-TOTAL     PIC S9(17) COMP-3.
           05  FILLER                  PIC X(103).
      * Return codes: 0000 accepted, 0016 control totals do not match
      * the details, 0020 the details do not match the ledger's day,
      * 0024 malformed file.
       01  EOD-REPLY.
           05  ER-RECORD-TYPE          PIC X(4)  VALUE 'EODR'.
           05  ER-BUSINESS-DATE        PIC 9(8).
           05  ER-RETURN-CODE          PIC 9(4).
           05  ER-RECORD-COUNT         PIC 9(9).
           05  ER-MESSAGE              PIC X(80).
