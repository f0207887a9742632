"""A small PR diff that several publisher tests post on, and a fix for two of its lines.

``TWO_FILE_DIFF`` changes ``src/app.py`` in two hunks (head lines 1-8, with
2, 5 and 6 added, and 22-25, with 24 added) and adds ``src/new.py``
(lines 1-3). ``RANGE_FIX`` replaces ``src/app.py`` lines 5-6 exactly, so it
can become a one-click suggestion on a comment over those lines.
"""

from __future__ import annotations

TWO_FILE_DIFF = (
    "diff --git a/src/app.py b/src/app.py\n"
    "--- a/src/app.py\n"
    "+++ b/src/app.py\n"
    "@@ -1,6 +1,8 @@\n"
    " import os\n"
    "+import sys\n"
    " \n"
    " def main():\n"
    "-    print(os.getcwd())\n"
    "+    print(os.getcwd(), sys.argv)\n"
    "+    return 0\n"
    " \n"
    " def other():\n"
    "@@ -20,3 +22,4 @@ def helper():\n"
    "     a = 1\n"
    "     b = 2\n"
    "+    c = 3\n"
    "     return a + b\n"
    "diff --git a/src/new.py b/src/new.py\n"
    "new file mode 100644\n"
    "--- /dev/null\n"
    "+++ b/src/new.py\n"
    "@@ -0,0 +1,3 @@\n"
    "+VALUE = 1\n"
    "+OTHER = 2\n"
    "+THIRD = 3\n"
)
RANGE_FIX = (
    "--- a/src/app.py\n+++ b/src/app.py\n@@ -5,2 +5,2 @@\n"
    "-    print(os.getcwd(), sys.argv)\n-    return 0\n+    print(sys.argv)\n+    return 1\n"
)
