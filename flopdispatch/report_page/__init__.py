"""The HTML report page's sources, shipped as package data: ``page.html`` (the template),
``page.css`` and ``page.js``. ``flopdispatch.htmlreport`` reads them with importlib.resources
and inlines them, with the report's JSON, into one self-contained file."""
