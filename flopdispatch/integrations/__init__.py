"""Optional integrations with training frameworks (issue 14). Each submodule imports its framework;
``import flopdispatch`` never imports them."""
