app_name = "erp_connect"
app_title = "ERP Connect"
app_publisher = "erp_connect developers"
app_description = "Connect ERPNext to webshops, POS terminals, apps and other sites"
app_email = "dev@erp-connect.invalid"
app_license = "mit"

required_apps = ["frappe/erpnext"]

# Installation
# ------------

after_install = "erp_connect.install.after_install"
before_uninstall = "erp_connect.install.before_uninstall"
after_migrate = "erp_connect.install.after_migrate"
