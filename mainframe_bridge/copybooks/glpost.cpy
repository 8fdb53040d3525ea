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
      * 0012 unknown account, 0024 malformed record, 0028 business day
      * already closed (its end-of-day file was accepted), 0040 the
      * sender may not post (only the bridge's identity posts).
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
      * End-of-day batch file GLPOST.D<yymmdd> (every dataset name
      * qualifier is 1-8 characters): fixed length records of 200
      * bytes: one EOD-HEADER, the EOD-DETAIL records (one per ledger
      * entry posted that day), one EOD-TRAILER. It travels as frames
      * of whole records; the mainframe answers with one EOD-REPLY.
      * EH-CREATION-DATE/-TIME: when the bridge built the file, in the
      * bank's time zone (America/Lima). EH-FILE-SEQUENCE: 1 for the
      * first day the bridge closed, then one more per closed day.
      *****************************************************************
       01  EOD-HEADER.
           05  EH-RECORD-TYPE          PIC X(4)  VALUE 'EODH'.
           05  EH-BUSINESS-DATE        PIC 9(8).
           05  EH-FILE-NAME            PIC X(44).
           05  EH-CREATION-DATE        PIC 9(8).
           05  EH-CREATION-TIME        PIC 9(6).
           05  EH-FILE-SEQUENCE        PIC 9(6).
           05  FILLER                  PIC X(124).
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
      * Record counts per type: ET-HEADER-COUNT and ET-TRAILER-COUNT
      * are 1, ET-DETAIL-COUNT the EOD-DETAIL records, ET-RECORD-COUNT
      * every record of the file (details + 2).
      * ET-HASH-TOTAL, as ACH's entry hash: the sum over every detail
      * of the digits of ED-ACCOUNT read as a number (140101 for
      * '140101'), keeping the 10 low-order digits. A detail whose
      * account was changed in transit changes it; control totals
      * (the amounts per currency and side) would not see that.
       01  EOD-TRAILER.
           05  ET-RECORD-TYPE          PIC X(4)  VALUE 'EODT'.
           05  ET-HEADER-COUNT         PIC 9(9).
           05  ET-DETAIL-COUNT         PIC 9(9).
           05  ET-TRAILER-COUNT        PIC 9(9).
           05  ET-RECORD-COUNT         PIC 9(9).
           05  ET-TOTALS OCCURS 4 TIMES.
               10  ET-CURRENCY         PIC X(3).
               10  ET-DEBIT-TOTAL      PIC S9(17) COMP-3.
               10  ET-CREDIT-TOTAL     PIC S9(17) COMP-3.
           05  ET-HASH-TOTAL           PIC 9(10).
           05  FILLER                  PIC X(66).
      * Return codes: 0000 accepted, 0016 control totals do not match
      * the details (or debits differ from credits), 0020 the details
      * do not match the ledger's day, 0024 malformed file, 0028 the
      * day is already closed with another file, 0032 record counts
      * do not match the file, 0036 hash total does not match.
      * The same file sent again for a day it closed is answered as
      * the first time.
       01  EOD-REPLY.
           05  ER-RECORD-TYPE          PIC X(4)  VALUE 'EODR'.
           05  ER-BUSINESS-DATE        PIC 9(8).
           05  ER-RETURN-CODE          PIC 9(4).
           05  ER-RECORD-COUNT         PIC 9(9).
           05  ER-MESSAGE              PIC X(80).
      *****************************************************************
      * The mainframe's book, for the bridge and the operator: a
      * BOOK-INQUIRY asks for the entries of the postings posted (return
      * code 0000) on BQ-BUSINESS-DATE after the position (posting seq,
      * entry line) BQ-AFTER-SEQ/BQ-AFTER-LINE (0/0: from the start).
      * The answer is one frame: BOOK-ITEM records, one per ledger
      * entry in (seq, line) order, then one BOOK-END. BN-MORE 'Y': ask
      * again after BN-LAST-SEQ/BN-LAST-LINE. Return codes: 0000, 0024
      * malformed inquiry (no items).
      *****************************************************************
       01  BOOK-INQUIRY.
           05  BQ-RECORD-TYPE          PIC X(4)  VALUE 'BKQY'.
           05  BQ-BUSINESS-DATE        PIC 9(8).
           05  BQ-AFTER-SEQ            PIC 9(14).
           05  BQ-AFTER-LINE           PIC 9(3).
       01  BOOK-ITEM.
           05  BI-RECORD-TYPE          PIC X(4)  VALUE 'BKIT'.
           05  BI-POSTING-SEQ          PIC 9(14).
           05  BI-LINE                 PIC 9(3).
           05  BI-POSTING-ID           PIC X(80).
           05  BI-PAYMENT-ID           PIC X(80).
           05  BI-CHANNEL              PIC 9(2).
           05  BI-LOAN-TYPE            PIC 9(2).
           05  BI-ENTRY-ID             PIC X(88).
           05  BI-ACCOUNT              PIC X(10).
           05  BI-SIDE                 PIC X(1).
               88  BI-DEBIT                      VALUE 'D'.
               88  BI-CREDIT                     VALUE 'C'.
           05  BI-CURRENCY             PIC X(3).
           05  BI-AMOUNT               PIC S9(15) COMP-3.
       01  BOOK-END.
           05  BN-RECORD-TYPE          PIC X(4)  VALUE 'BKND'.
           05  BN-BUSINESS-DATE        PIC 9(8).
           05  BN-RETURN-CODE          PIC 9(4).
           05  BN-ITEM-COUNT           PIC 9(5).
           05  BN-MORE                 PIC X(1).
               88  BN-MORE-FOLLOWS               VALUE 'Y'.
               88  BN-NO-MORE                    VALUE 'N'.
           05  BN-LAST-SEQ             PIC 9(14).
           05  BN-LAST-LINE            PIC 9(3).
           05  BN-MESSAGE              PIC X(80).
